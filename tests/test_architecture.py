"""The architecture map (docs/architecture.md) matches the tree, the trust boundary is one package that only its
host sides import, modules stay small, nothing imports the instructor commands of grading/cli/, and production
code never imports the tests (fast)."""
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
    "grading/sandbox/": ["kernel_manager.py", "provisioners.py"],
    "grading/rpc/": ["client.py", "transport.py", "session.py", "kernel_handle.py"],
    "grading/in_sandbox/": ["wire.py", "rpc_server.py", "fork_server.py", "warm_child.py"],
    "grading/cli/": ["grade_class.py", "feedback.py", "run_instructor.py", "demo_course.py", "roster.py"],
    "grading/class_grading/": ["class_run.py", "autograde_one.py", "gradebook_rows.py", "recording.py",
                               "dask_tasks.py", "up_to_date.py", "ship_package.py", "problems.py", "feedback.py"],
    "grading/courses/": ["course_dir.py", "demo_course.py", "sample_class.py", "roster.py", "instructor_notebook.py"],
    "grading/course_config.py": None,
    "grading/fixtures/": ["bug_catalog.py", "reference_solutions.py"],
}
NOT_PRODUCTION = {".git", ".venv", "tests", "__pycache__", "submitted", "autograded", "feedback", "reports",
                  "demo"}  # demo/: `make demo`'s course, with build copies of grading/


def map_section():
    """The "## The map" section of docs/architecture.md."""
    return REPO.joinpath("docs", "architecture.md").read_text().split("\n## The map\n", 1)[1].split("\n## ", 1)[0]


def architecture_map():
    """{path at the start of a line of the map (e.g. "grading/plugins/"): its description, joined}."""
    section = map_section()
    block = section.split("```\n", 2)[1]
    entries, current = {}, None
    for line in block.splitlines():
        if line.startswith(" "):
            entries[current] += " " + line.strip()
        else:
            current, _, text = line.partition(" ")
            entries[current] = text.strip()
    return entries


def packages_in_tree():
    return {f"{p.parent.relative_to(REPO)}/" for p in (REPO / "grading").rglob("*.py")
            if "__pycache__" not in p.parts and p.parent != REPO / "grading"}


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


def test_the_map_draws_the_trust_boundary():
    section = map_section()
    assert "bwrap sandbox" in section and "grading/in_sandbox/" in section


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


def python_files_outside_the_commands():
    """Every Python file of the bundle (production code, tests, benchmarks) except grading/cli/ itself."""
    commands = REPO / "grading" / "cli"
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_PRODUCTION - {"tests"} and not d.startswith(".")
                   and os.path.join(folder, d) != str(commands)]
        yield from (os.path.join(folder, f) for f in files if f.endswith(".py"))


def imports_a_command(node):
    """Whether an import statement reaches grading.cli (tests run the commands as subprocesses instead)."""
    if isinstance(node, ast.Import):
        return any(a.name == "grading.cli" or a.name.startswith("grading.cli.") for a in node.names)
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return (node.module == "grading.cli" or node.module.startswith("grading.cli.")
                or node.module == "grading" and any(a.name == "cli" for a in node.names))
    return False


def test_nothing_imports_the_commands():
    """grading/cli/ holds only argument parsing and printing over the library packages: no plugin, library module,
    test or benchmark imports it (a test runs a command with `python -m grading.cli.<name>`)."""
    files = list(python_files_outside_the_commands())
    offenders = [f"{os.path.relpath(path, REPO)}:{node.lineno}" for path in files
                 for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())) if imports_a_command(node)]
    assert not offenders
    assert any("/tests/" in path for path in files) and any("/benchmarks/" in path for path in files)


# ---------------------------------------------------------------------------------------------------------------
# the trust boundary: grading/in_sandbox/ holds everything that runs inside the sandbox
# ---------------------------------------------------------------------------------------------------------------

IN_SANDBOX = REPO / "grading" / "in_sandbox"
# What the sandboxed processes have besides the standard library and numpy, per module: the warm child loads the
# seccomp filter (pyseccomp) and starts the kernel (ipykernel), both from the read-only venv.
THIRD_PARTY_INSIDE = {"seccomp.py": {"pyseccomp"}, "warm_child.py": {"ipykernel"}}
# The host sides of the boundary: the only code outside the package that imports it.
HOST_SIDES = ("grading/rpc/", "grading/sandbox/")


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


def test_no_module_needs_a_scroll_bar():
    """No module of grading/ or of the checker shipped next to the notebook over about 350 lines (classes and
    functions: above); the bug catalog is data, one entry per catalogued bug."""
    modules = [*(REPO / "grading").rglob("*.py"), *(REPO / "source").rglob("*.py")]
    too_long = [f"{p.relative_to(REPO)} ({n})" for p in sorted(modules) if "__pycache__" not in p.parts
                and p.name != "bug_catalog.py" and (n := len(p.read_text(encoding="utf-8").splitlines())) > 350]
    assert len(modules) > 40 and too_long == []
