"""Every Python file of the bundle passes ruff (ruff.toml): the grader, the kernel side of the RPC, the checker
students get, the tests and the benchmarks."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    proc = subprocess.run([str(Path(sys.executable).parent / "ruff"), "check", "--output-format", "concise", "."],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
