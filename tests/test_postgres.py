"""The gradebook in a real PostgreSQL server (Debian's postgresql package, `make system-deps`): the sample class
graded into it sequentially and on 2 workers gets exactly the gradebook of the SQLite run (slow: whole
classes).

The server is started here with initdb in a temporary directory, as the postgres user (PostgreSQL refuses to
run as root), listening only on a Unix socket in that directory (no TCP), and stopped at teardown."""
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest

from graded_course import EXPECTED, grade_table, graded_course, gradebook_contents, make_class, run  # noqa: F401

pytestmark = pytest.mark.slow


def _postgres_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class Server:
    """A throw-away PostgreSQL server on a Unix socket in `root`."""

    def __init__(self, root, bin_dir):
        self.root, self.bin = root, bin_dir
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def command(self, name, *args):
        subprocess.run([*self.as_owner, str(self.bin / name), *args], check=True, capture_output=True, text=True,
                       timeout=120)

    def start(self):
        if self.as_owner:  # the data directory and socket belong to the server's user
            shutil.chown(self.root, "postgres", "postgres")
        self.command("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                     "--no-sync")
        options = f"-c listen_addresses='' -k {self.root} -c fsync=off"
        self.command("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "server.log"), "-o", options,
                     "-w", "start")

    def stop(self):
        self.command("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def new_database(self, name):
        """An empty database; its URL for nbgrader's db_url."""
        connection = psycopg2.connect(dbname="postgres", user="postgres", host=str(self.root))
        try:
            connection.autocommit = True
            connection.cursor().execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return f"postgresql+psycopg2://postgres@/{name}?host={self.root}"


@pytest.fixture(scope="module")
def postgres():
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed: `make system-deps`")
    root = Path(tempfile.mkdtemp(prefix="pg-"))  # under /tmp, which the postgres user can reach
    server = Server(root, bin_dir)
    try:
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_sample_class_graded_into_postgresql_matches_sqlite(postgres, graded_course, tmp_path, workers):
    db_url = postgres.new_database(f"gradebook_workers_{workers}")
    course = make_class(tmp_path / "course", db_url=db_url)
    log = run(course, "grading.cli.grade_class", "--workers", workers)
    assert f"graded {len(EXPECTED)}/{len(EXPECTED)} submissions" in log, log
    assert not (course / "gradebook.db").exists(), "grading wrote a SQLite gradebook"
    assert grade_table(course) == grade_table(graded_course) == EXPECTED
    assert gradebook_contents(course) == gradebook_contents(graded_course)
    rerun = run(course, "grading.cli.grade_class", "--workers", workers)
    assert f"{len(EXPECTED)} submission(s) already graded and unchanged" in rerun, rerun
