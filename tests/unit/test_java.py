from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from wattflow.errors import StackError
from wattflow.stack.java import find_java, required_java_major


def _jar_with_class(path: Path, major: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        header = b"\xca\xfe\xba\xbe\x00\x00" + major.to_bytes(2, "big")
        archive.writestr("io/questdb/ServerMain.class", header + b"rest")
    return path


@pytest.mark.parametrize(("class_major", "java"), [(61, 17), (65, 21), (69, 25)])
def test_class_file_level_tells_the_java_release(tmp_path: Path, class_major: int, java: int) -> None:
    jar = _jar_with_class(tmp_path / "server.jar", class_major)
    assert required_java_major(jar, "io/questdb/ServerMain.class") == java


def test_a_java_that_can_run_kafka_is_found() -> None:
    runtime = find_java(17)
    assert runtime.major >= 17
    assert runtime.java.exists()


def test_an_impossible_java_is_a_clear_error() -> None:
    with pytest.raises(StackError, match=r"no Java 99\+ runtime found") as raised:
        find_java(99)
    assert "WATTFLOW_STACK_JAVA_HOME" in str(raised.value)
