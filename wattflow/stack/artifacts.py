"""Fetch the Kafka broker's classpath and the QuestDB jar from Maven Central once, then reuse them.

The Maven project ships inside the package (``maven/pom.xml``); it is copied into the cache and run
there, so nothing is written into the source tree. A finished download leaves a marker file: the next
``stack up`` sees it and runs no Maven at all.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from wattflow.errors import StackError
from wattflow.settings import StackSettings

POM = Path(__file__).with_name("maven") / "pom.xml"
_MARKER = ".complete"


@dataclass(frozen=True, slots=True)
class StackJars:
    kafka_libs: Path
    questdb_jar: Path
    downloaded: bool
    seconds: float


def jars_dir(settings: StackSettings) -> Path:
    return settings.cache_dir / "jars" / f"kafka-{settings.kafka_version}_questdb-{settings.questdb_version}"


def ensure_jars(settings: StackSettings, log: Path | None = None) -> StackJars:
    """Return the cached jars, materialising them with Maven first if they are not there yet."""
    libs = jars_dir(settings)
    kafka_libs, questdb_jar = libs / "kafka", libs / "questdb" / "questdb.jar"
    if (libs / _MARKER).exists() and questdb_jar.exists():
        return StackJars(kafka_libs, questdb_jar, downloaded=False, seconds=0.0)
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is needed once to fetch Kafka and QuestDB from Maven Central, and it is not on PATH",
            hint="install it (apt-get install maven) and run `wattflow stack up` again",
        )
    build = settings.cache_dir / "maven-build"
    build.mkdir(parents=True, exist_ok=True)
    shutil.copy2(POM, build / "pom.xml")
    if libs.exists():
        shutil.rmtree(libs)
    command = [
        mvn, "-B", "-q", "-f", str(build / "pom.xml"), "package",
        f"-Dwattflow.libs={libs}",
        f"-Dkafka.version={settings.kafka_version}",
        f"-Dquestdb.version={settings.questdb_version}",
    ]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not questdb_jar.exists():
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-8:])
        raise StackError(
            f"Maven could not fetch Kafka {settings.kafka_version} and QuestDB {settings.questdb_version}:\n{tail}",
            hint="check that Maven Central is reachable and the versions exist "
            "(WATTFLOW_STACK_KAFKA_VERSION, WATTFLOW_STACK_QUESTDB_VERSION)",
        )
    (libs / _MARKER).write_text(f"kafka {settings.kafka_version}\nquestdb {settings.questdb_version}\n")
    return StackJars(kafka_libs, questdb_jar, downloaded=True, seconds=time.monotonic() - started)
