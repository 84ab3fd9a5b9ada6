"""Find a Java runtime that can run a given jar.

Kafka 4.x needs Java 17+. QuestDB up to 9.3.x is built for Java 17, 9.4+ for Java 25: instead of trusting
version numbers, read the class-file level of the jar's main class and pick the first JDK that can run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from wattflow.errors import StackError

#: Class-file major version minus this offset is the Java release (61 -> 17, 69 -> 25).
_CLASS_VERSION_OFFSET = 44


@dataclass(frozen=True, slots=True)
class JavaRuntime:
    home: Path
    major: int

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def required_java_major(jar: Path, class_path: str) -> int:
    """The Java release a class inside ``jar`` was compiled for (bytes 6-7 of the class file)."""
    with zipfile.ZipFile(jar) as archive:
        header = archive.read(class_path)[:8]
    if header[:4] != b"\xca\xfe\xba\xbe":
        raise StackError(f"{class_path} in {jar} is not a class file")
    return int.from_bytes(header[6:8], "big") - _CLASS_VERSION_OFFSET


def _major_of(home: Path) -> int | None:
    release = home / "release"
    text = release.read_text(errors="replace") if release.exists() else ""
    found = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', text)
    if found is None and (home / "bin" / "java").exists():
        probe = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True, check=False)
        found = re.search(r'version "(\d+)(?:\.(\d+))?', probe.stderr)
    if found is None:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def candidate_homes(preferred: Path | None = None) -> list[Path]:
    homes: list[Path] = []
    if preferred:
        homes.append(preferred)
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    on_path = shutil.which("java")
    if on_path:
        homes.append(Path(on_path).resolve().parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        homes.extend(sorted(p.resolve() for p in jvm.iterdir() if p.is_dir()))
    unique: list[Path] = []
    for home in homes:
        if home not in unique and (home / "bin" / "java").exists():
            unique.append(home)
    return unique


def find_java(min_major: int, preferred: Path | None = None) -> JavaRuntime:
    """The preferred JDK if it is recent enough, else the oldest installed JDK that is (the most tested)."""
    found: list[JavaRuntime] = []
    for home in candidate_homes(preferred):
        major = _major_of(home)
        if major is not None:
            found.append(JavaRuntime(home, major))
    if preferred is not None:
        for runtime in found:
            if runtime.home == preferred and runtime.major >= min_major:
                return runtime
    usable = sorted((r for r in found if r.major >= min_major), key=lambda r: r.major)
    if not usable:
        seen = ", ".join(f"{r.home} (Java {r.major})" for r in found) or "none"
        raise StackError(
            f"no Java {min_major}+ runtime found; seen: {seen}",
            hint=f"install a JDK {min_major}+ (e.g. apt-get install openjdk-{max(min_major, 17)}-jdk-headless) "
            "or point WATTFLOW_STACK_JAVA_HOME at one",
        )
    return usable[0]
