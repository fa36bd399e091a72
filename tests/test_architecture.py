"""The README's architecture map matches the tree, the trust boundary is one package that only its host sides
import, modules stay small, and production code never imports the tests (fast)."""
import ast
import os
import re
import sys

from conftest import REPO

TESTS = REPO / "tests"
# Modules the map names that every version of the tree has (the map may name more).
KNOWN_MODULES = {
    "grading/course.py": None,
    "grading/plugins/": ["trusted_execute.py", "sanitize.py", "late_penalty.py", "due_date.py",
                         "release_feedback.py", "feedback_page.py", "wrap_output.py", "quiet_logs.py"],
    "grading/sandbox/": ["kernel_manager.py"],
    "grading/rpc/": ["client.py"],
    "grading/cli/": ["grade_class.py", "autograde_one.py", "gradebook_rows.py", "recording.py", "dask_tasks.py",
                     "up_to_date.py", "ship_package.py", "report.py", "sample_class.py", "run_instructor.py",
                     "course_dir.py", "demo_course.py"],
    "grading/fixtures/": ["bug_catalog.py", "reference_solutions.py"],
}
NOT_PRODUCTION = {".git", ".venv", "tests", "__pycache__", "submitted", "autograded", "feedback", "reports",
                  "demo"}  # demo/: `make demo`'s course, with build copies of grading/


def architecture_map():
    """{path at the start of a line of the map (e.g. "grading/plugins/"): its description, joined}."""
    section = REPO.joinpath("README.md").read_text().split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```\n", 2)[1]
    entries, current = {}, None
    for line in block.splitlines():
        if line.startswith(" "):
            entries[current] += " " + line.strip()
        else:
            current, _, text = line.partition(" ")
            entries[current] = text.strip()
    return entries


# Packages the README's map does not name yet: the map moves to docs/ (issue 16), which adds them.
NOT_YET_ON_THE_MAP = {"grading/in_sandbox/"}


def packages_in_tree():
    return {f"{p.parent.relative_to(REPO)}/" for p in (REPO / "grading").rglob("*.py")
            if "__pycache__" not in p.parts and p.parent != REPO / "grading"} - NOT_YET_ON_THE_MAP


def test_every_package_of_grading_is_on_the_map_and_every_package_on_the_map_exists():
    mapped = {path for path in architecture_map() if path.startswith("grading/") and path.endswith("/")}
    assert mapped == packages_in_tree()
    for package in mapped:
        assert (REPO / package / "__init__.py").is_file(), package


def test_the_map_names_the_modules_every_version_of_the_tree_has():
    entries = architecture_map()
    for path, modules in KNOWN_MODULES.items():
        assert path in entries and (REPO / path).exists(), path
        for module in modules or []:
            assert (REPO / path / module).is_file() and module in entries[path], path + module


def production_sources():
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_PRODUCTION and not d.startswith(".")]
        yield from (os.path.join(folder, f) for f in files if f.endswith(".py"))


def imported_modules(source):
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_no_module_outside_tests_imports_the_tests():
    test_modules = {p.stem for p in TESTS.glob("*.py")} | {"tests", "conftest"}
    offenders = []
    for path in production_sources():
        source = open(path, encoding="utf-8").read()
        offenders += [(path, name) for name in imported_modules(source) if name.split(".")[0] in test_modules]
        offenders += [(path, line.strip()) for line in source.splitlines()
                      if re.search(r"sys\.path\b.*\btests\b", line)]
    assert not offenders
    assert len(list(production_sources())) > 10  # the walk did find the production code


def test_no_grading_class_needs_a_scroll_bar():
    """Small single-job pieces: no class in grading/ over 250 lines, no function over 60."""
    too_long = []
    for path in sorted((REPO / "grading").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = 250 if isinstance(node, ast.ClassDef) else 60
                if node.end_lineno - node.lineno + 1 > limit:
                    too_long.append(f"{path.relative_to(REPO)}: {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not too_long


# ---------------------------------------------------------------------------------------------------------------
# the trust boundary: grading/in_sandbox/ holds everything that runs inside the sandbox
# ---------------------------------------------------------------------------------------------------------------

IN_SANDBOX = REPO / "grading" / "in_sandbox"
# What the sandboxed processes have besides the standard library and numpy, per module: the warm child loads the
# seccomp filter (pyseccomp) and starts the kernel (ipykernel), both from the read-only venv.
THIRD_PARTY_INSIDE = {"seccomp.py": {"pyseccomp"}, "warm_child.py": {"ipykernel"}}
# The host sides of the boundary: the only code outside the package that imports it.
HOST_SIDES = ("grading/rpc/", "grading/sandbox/")
SMALL_MODULES = ("grading/in_sandbox", "grading/rpc", "grading/sandbox")


def imports_of(source):
    """(top-level module name or "." for a relative import, line) of every import, wherever it is."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:      # "." within the package; ".." would reach out of it
                yield "." * node.level, node.lineno
            else:
                yield from ((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)


def test_the_in_sandbox_package_imports_only_the_standard_library_numpy_and_itself():
    modules = sorted(IN_SANDBOX.glob("*.py"))
    assert {"__init__.py", "wire.py", "rpc_server.py", "rpc_serving.py", "fork_server.py", "warm_child.py",
            "linux.py", "seccomp.py"} <= {m.name for m in modules}
    offenders = []
    for module in modules:
        allowed = set(sys.stdlib_module_names) | {"numpy", "__future__"} | THIRD_PARTY_INSIDE.get(module.name, set())
        offenders += [(module.name, line, name) for name, line in imports_of(module.read_text())
                      if name != "." and name.split(".")[0] not in allowed]
    assert offenders == []


def test_only_the_host_sides_import_the_in_sandbox_package():
    offenders = []
    for path in production_sources():
        rel = os.path.relpath(path, REPO)
        if rel.startswith(("grading/in_sandbox/", *HOST_SIDES)):
            continue
        source = open(path, encoding="utf-8").read()
        offenders += [(rel, line) for name, line in imports_of(source)
                      if name.startswith(("grading.in_sandbox", "in_sandbox"))]
        offenders += [(rel, "mentions the package's name inside") for _ in re.finditer(r"_grading_in_sandbox", source)]
    assert offenders == []


def test_the_in_sandbox_package_is_shipped_whole():
    """No list of its files is kept anywhere: the RPC and the warm template ship what is in the directory."""
    from grading import in_sandbox
    assert list(in_sandbox.sources()) == sorted(p.name for p in IN_SANDBOX.glob("*.py"))
    for path in production_sources():
        source = open(path, encoding="utf-8").read()
        assert not re.search(r"[\"']fork_server\.py[\"']|[\"']rpc_server\.py[\"']|[\"']wire\.py[\"']", source), path


def test_the_sandbox_and_rpc_modules_are_small():
    """No module of the trust boundary or its host sides over 350 lines (classes and functions: below)."""
    too_long = [f"{p.relative_to(REPO)} ({n})" for d in SMALL_MODULES for p in sorted((REPO / d).glob("*.py"))
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 350]
    assert too_long == []
