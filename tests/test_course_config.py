"""The course configuration: one loader (grading/course_config.py), and nbgrader_config.py setting only what
differs from the trait defaults the plugins and nbgrader define, plus a short list shown on purpose (fast)."""
import importlib
import pkgutil

import nbgrader.apps  # noqa: F401 -- defines nbgrader's configurable classes (apps, converters, preprocessors)
from traitlets.config import Configurable
from traitlets.utils.importstring import import_item

from conftest import REPO
from grading.course import COURSE_ID
from grading.course_config import course_directory, course_id, gradebook_url, load_course_config, nbgrader_api

# Settings nbgrader_config.py sets to their trait's default on purpose, each with why an instructor must see it
# there. Anything else the config sets must differ from its default: a default restated is a second source of
# truth that silently stops changing the setting when the plugin's default changes.
SHOWN_ON_PURPOSE = {
    "DueDate.due_date": "the due date's one home: an instructor sets it there each term (tests/test_real_class.py)",
    "PercentPerDayLate.percent_per_day": "the late policy the students are told",
    "CanvasCsvExport.canvas_assignment_id": "each term's Canvas assignment has its own id, filled in there",
}
GRADING_PACKAGES = ("grading.plugins", "grading.sandbox", "grading.trusted")  # where the bundle's traits live


def configurable_classes():
    """{class name: [Configurable subclasses of that name]}, over nbgrader, nbconvert and the bundle's packages
    (a config section applies to every class of its name)."""
    for package in GRADING_PACKAGES:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
    found, todo = {}, [Configurable]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.__name__, set()).add(cls)
        todo += cls.__subclasses__()
    return found


def as_object(value):
    """A configured value as the trait holds it: "package.module.Class" strings imported (Type traits take either)."""
    if isinstance(value, list):
        return [as_object(v) for v in value]
    if isinstance(value, str) and "." in value and value.replace(".", "").replace("_", "").isalnum():
        try:
            item = import_item(value)
        except (ImportError, AttributeError, ValueError):
            return value
        return item if isinstance(item, type) else value
    return value


def restates(value, default):
    """Whether a configured value says nothing its trait's default does not (a dict: all its entries are the
    default's)."""
    value = as_object(value)
    if isinstance(value, dict) and isinstance(default, dict) and value:
        return all(key in default and default[key] == item for key, item in value.items())
    return value == default


def configured_defaults():
    """{"Section.trait" set by nbgrader_config.py to what its trait's default already is}; fails on a setting no
    known class has (a typo, or a trait that no longer exists)."""
    classes, unknown, restated = configurable_classes(), [], set()
    for section, values in load_course_config(REPO).items():
        for name, value in values.items():
            owners = [c for c in classes.get(section, ()) if name in c.class_traits(config=True)]
            unknown += [] if owners else [f"{section}.{name}"]
            if any(restates(value, c.class_traits()[name].default()) for c in owners):
                restated.add(f"{section}.{name}")
    assert not unknown, f"nbgrader_config.py sets traits no class has: {unknown}"
    return restated


def test_the_config_sets_only_what_differs_from_the_defaults_and_what_is_shown_on_purpose():
    restated = configured_defaults()
    assert restated - set(SHOWN_ON_PURPOSE) == set(), "set to its default: drop it, name the trait in a comment"
    assert set(SHOWN_ON_PURPOSE) <= restated, "no longer set to its default: take it off SHOWN_ON_PURPOSE"


def test_the_check_sees_a_restated_default():
    assert restates(10, 10.0) and restates("grading.sandbox.kernel_manager.SandboxedKernelManager",
                                           import_item("grading.sandbox.kernel_manager.SandboxedKernelManager"))
    assert restates({"python": "x"}, {"python": "x", "matlab": "y"}) and not restates({"python": "z"}, {"python": "x"})
    assert not restates(["nbgrader.preprocessors.GetGrades"], [])


def test_the_loader_reads_the_course_config_as_nbgrader_does():
    assert course_id(REPO) == COURSE_ID
    assert course_directory(REPO).root == str(REPO)
    assert gradebook_url(REPO) == f"sqlite:///{REPO / 'gradebook.db'}"


def test_a_course_config_without_root_or_course_id_gets_the_course_folder_and_the_gradebook_default(tmp_path):
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    assert course_id(tmp_path) == "default_course"   # what nbgrader's Gradebook calls it
    assert gradebook_url(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'gradebook.db'}"
    api = nbgrader_api(tmp_path, CourseDirectory={"db_url": "sqlite:///elsewhere.db"})
    assert api.coursedir.db_url == "sqlite:///elsewhere.db"
    assert api.config.CourseDirectory.root == str(tmp_path.resolve())   # plugins read the root from the config
