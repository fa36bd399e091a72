"""The README is a short front door and the manual in docs/ holds together (fast): every `make <target>` the pages
name is a Makefile target, every relative link and #anchor resolves, every docs page is linked from the README,
and the Makefile's header (its table of contents) names real targets and documents every .PHONY one."""
import re

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MAKEFILE = REPO / "Makefile"
README_MAX_LINES = 150


def pages():
    return [README, *sorted(DOCS.glob("*.md"))]


def without_fenced_code(text):
    return re.sub(r"^\s*```.*?^\s*```[^\n]*$", "", text, flags=re.S | re.M)


def fenced_code(text):
    return re.findall(r"^\s*```[^\n]*\n(.*?)^\s*```", text, flags=re.S | re.M)


def makefile_targets():
    """The rules' names (`name:` at the start of a line; `NAME := value` is a variable)."""
    return set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", MAKEFILE.read_text(), flags=re.M))


def phony_targets():
    text = MAKEFILE.read_text().replace("\\\n", " ")
    return set(re.search(r"^\.PHONY:(.*)$", text, flags=re.M).group(1).split())


def make_commands(text):
    """The arguments of every `make ...` in inline code or at the start of a line of a code block."""
    commands = re.findall(r"`make ([^`]*)`", without_fenced_code(text))
    for block in fenced_code(text):
        commands += [m.group(1).split("#")[0] for m in re.finditer(r"^\s*make (.*)$", block, flags=re.M)]
    return commands


def named_targets(command):
    """The targets of one make command line: its words that are neither VAR=value nor options."""
    return [word for word in command.split() if "=" not in word and not word.startswith("-") and word != "..."]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    """Every anchor GitHub gives the headings of a markdown file (duplicates numbered -1, -2, ...)."""
    seen, result = {}, set()
    for line in without_fenced_code(path.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def relative_links(path):
    text = re.sub(r"`[^`\n]*`", "", without_fenced_code(path.read_text()))
    return [link for link in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_the_manual_is_in_docs_and_the_slugs_are_githubs():
    assert {p.name for p in DOCS.glob("*.md")} >= {"students.md", "instructors.md", "operations.md", "security.md",
                                                   "architecture.md", "benchmarks.md"}
    assert slug("Where one submission's time goes") == "where-one-submissions-time-goes"
    assert slug("Debugging with `gradcheck.py`") == "debugging-with-gradcheckpy"
    assert slug("Security: grades decided where student code cannot reach") == \
        "security-grades-decided-where-student-code-cannot-reach"


def test_every_make_target_the_pages_name_is_in_the_makefile():
    targets = makefile_targets()
    assert {"demo", "test", "autograde"} <= targets   # the parse found the rules
    unknown = []
    for page in pages():
        commands = make_commands(page.read_text())
        assert page != README or commands, "the README names no make target"
        unknown += [(page.name, target) for command in commands for target in named_targets(command)
                    if target not in targets]
    assert not unknown


def test_every_relative_link_and_anchor_resolves():
    broken, checked = [], 0
    for page in pages():
        for link in relative_links(page):
            checked += 1
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append((page.name, link, "no such file"))
            elif anchor and (target.suffix != ".md" or anchor not in anchors(target)):
                broken.append((page.name, link, "no such heading"))
    assert checked > 20 and not broken


def test_the_readme_is_a_short_front_door_to_every_docs_page():
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in relative_links(README)}
    assert not [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert "make demo" in text and "make test" in text


def test_the_makefile_header_is_its_table_of_contents():
    lines = MAKEFILE.read_text().splitlines()
    header = lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    documented = {m.group(1) for line in header for m in [re.match(r"#\s+make ([\w-]+)", line)] if m}
    assert documented <= makefile_targets(), documented - makefile_targets()
    assert phony_targets() <= documented, phony_targets() - documented
    pointers = [m for line in header for m in re.findall(r"docs/[\w-]+\.md", line)]
    assert pointers and all((REPO / pointer).is_file() for pointer in pointers), pointers
    assert "README," not in "\n".join(header)   # sections of the manual live in docs/, not in the README
