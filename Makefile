# Course bundle for "In-class exercise 9: Deep Learning (Part 1B)".
# This Makefile is the table of contents: every job the bundle does is a target here. The manual is docs/ (README.md
# is the front door); docs/instructors.md has these targets with where each result lands.
#
#   make demo      set everything up and grade the sample class in its own course directory, demo/ (the main job)
#   make test      the whole test suite (what CI runs; its time: docs/benchmarks.md)
#   make test-fast the test suite without the whole-class runs marked slow
#
# Building blocks:
#   make venv          .venv from the exact pins in requirements.txt + constraints.txt, with grading/ installed
#                      editable (only when they or pyproject.toml changed), made by PYTHON (default python3:
#                      3.11 from 3.11.2, or 3.12, as Debian 12 and Ubuntu 24.04 ship)
#   make venv-python   the interpreter make venv uses, and whether it is supported (PYTHON_VERSIONS)
#   make system-deps   Debian packages: bubblewrap (grading sandbox), chromium (feedback page test), postgresql
#                      (the PostgreSQL gradebook test), python3-venv (venvs from Debian's python3)
#   make release       nbgrader generate_assignment: source/ -> release/ (commit the result)
#   make instructor    execute the instructor notebook in a fresh kernel (reproduces the seed's numbers)
#   make validate      nbgrader validate on the instructor notebook (must pass) and the release (must fail)
#   make class         the demo course demo/: course files, its release, the sample class (grading/cli/demo_course.py)
#   make demo-clean    delete demo/ (the real class is never touched by the demo)
#   make clean         delete demo/ and the build copies, never a real grade
#   make bench         benchmarks: checker false failures, class grading vs plain nbgrader (slow; docs/benchmarks.md)
# Grading, on the course directory COURSE (default: this repository, the real class; `make demo` passes demo):
#   make autograde     nbgrader autograde of every new or changed submission (FORCE=1: of every one), WORKERS at a
#                      time (default: all cores), with progress; SCHEDULER=tcp://host:8786 grades on a Dask cluster
#   make feedback      nbgrader's feedback, student by student -> feedback/<student>/ex09_backprop/backprop.html
#   make export        nbgrader export -> reports/grades.csv, with per-item columns -> reports/grades_with_items.csv,
#                      Canvas's gradebook import format -> reports/canvas_grades.csv
#   make report        grade table per student and item, reports/grades_overview.png; the class's named mistakes,
#                      reports/misconceptions.csv and .png
# These four never write students, due dates or the release, and none runs another: with real students,
# `make autograde feedback export report` (in that order, without -j).
#
# For students:
#   make student       JupyterLab on a copy of the release in student-work/, with Validate and no instructor tools
#
# A real class from an LMS (docs/instructors.md, "Grades from and to an LMS"):
#   make roster CSV=roster.csv            students (id, first_name, last_name, email, lms_user_id) -> gradebook
#   make collect-lms ZIP=submissions.zip  a Canvas or Moodle submissions zip -> submitted/ (nbgrader zip_collect);
#                                         Moodle also needs WORKSHEET=its grading worksheet (.csv)

ASSIGNMENT := ex09_backprop
PYTHON     ?= python3
VENV       := .venv
BIN        := $(CURDIR)/$(VENV)/bin
# nbgrader shells out to alembic, so the venv's bin must come first on PATH.
export PATH := $(BIN):$(PATH)
# One BLAS thread per process: kernels run side by side and must not oversubscribe the cores.
export OMP_NUM_THREADS := 1
export OPENBLAS_NUM_THREADS := 1
export MKL_NUM_THREADS := 1

WORKERS    ?= $(shell nproc)
SCHEDULER  ?=
COURSE     ?= .
DEMO       := demo

.PHONY: demo demo-clean test test-fast venv system-deps release instructor validate class autograde feedback export \
        report bench clean student roster collect-lms venv-python

demo: venv system-deps class
	@$(MAKE) --no-print-directory autograde feedback export report COURSE=$(DEMO)
	@echo "demo: all in $(DEMO)/: grades in gradebook.db and reports/grades.csv, feedback in feedback/," \
	      "pictures in reports/*.png; make demo-clean deletes it"

demo-clean:
	rm -rf $(DEMO)

# VENV_STAMP holds the digest of the pins the venv was installed from: it is reinstalled when the pins change,
# not when a fresh clone next to an existing .venv merely gives requirements.txt a newer time stamp. The grading
# package itself is installed editable (pyproject.toml: its kernel provisioners are entry points), so its
# pyproject.toml counts as a pin.
PINS       := $(shell cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
VENV_STAMP ?= $(VENV)/.installed
venv:
	@if [ "$$(cat $(VENV_STAMP) 2>/dev/null)" != "$(PINS)" ]; then \
	  echo "venv: installing the pinned requirements into $(VENV)"; \
	  $(MAKE) --no-print-directory venv-python || exit 1; \
	  { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	  $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt && \
	  $(BIN)/python -m pip install --quiet --no-deps -e . && \
	  echo "$(PINS)" > $(VENV_STAMP); \
	fi

# The interpreter `make venv` uses: PYTHON for a new venv, the venv's own once made. Supported: the minor versions
# of PYTHON_VERSIONS, each from the release listed (Debian 12's python3 is 3.11.2, Ubuntu 24.04's 3.12.3);
# tests/test_pins.py resolves the pins for each of them without installing. A python3 that cannot make venvs
# (no ensurepip: Debian's and Ubuntu's python3.X-venv is not installed) or no python3 at all gets Debian's package.
PYTHON_VERSIONS := 3.11.2 3.12.0
PYTHON_CHECK = import sys; v = sys.version_info[:3]; ok = [tuple(map(int, a.split("."))) for a in sys.argv[1:]]; \
  print("venv: using %s (%d.%d.%d)" % ((sys.executable,) + v)); \
  sys.exit(None if any(v[:2] == o[:2] and v >= o for o in ok) else "venv: Python %d.%d.%d is not supported: \
  use %s (make venv PYTHON=/path/to/python3)" % (v + (" or ".join("%d.%d from %s" % (o[0], o[1], a) \
  for o, a in zip(ok, sys.argv[1:])),)))
apt_install = { echo "venv: installing Debian's $(1) (needs root)"; apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; }
venv-python:
	@test -x $(BIN)/python && py=$(BIN)/python || py=$(PYTHON); \
	command -v $$py >/dev/null || [ "$$py" != python3 ] || $(call apt_install,python3-venv) || exit 1; \
	$$py -c '$(PYTHON_CHECK)' $(PYTHON_VERSIONS) || exit 1; \
	test -x $(BIN)/python || $$py -c 'import ensurepip' 2>/dev/null || \
	  $(call apt_install,$$($$py -c 'import sys; print("python%d.%d-venv" % sys.version_info[:2])'))

system-deps:
	@command -v bwrap >/dev/null && command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/initdb \
	  >/dev/null 2>&1 && /usr/bin/python3 -c 'import ensurepip' 2>/dev/null || { \
	  echo "installing Debian packages bubblewrap, chromium, postgresql and python3-venv (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap chromium \
	  postgresql python3-venv >/dev/null; }

# nn.py has one home, the top level; the assignment gets a build copy (git-ignored in source/).
release: venv
	cp nn.py source/$(ASSIGNMENT)/nn.py
	nbgrader generate_assignment $(ASSIGNMENT) --force --log-level=WARN
	@echo "release: wrote release/$(ASSIGNMENT)/ ($$(ls release/$(ASSIGNMENT) | tr '\n' ' '))"

instructor: release
	$(BIN)/python -m grading.cli.run_instructor source/$(ASSIGNMENT)/backprop.ipynb

validate: release
	nbgrader validate source/$(ASSIGNMENT)/backprop.ipynb
	! nbgrader validate release/$(ASSIGNMENT)/backprop.ipynb

class: venv
	$(BIN)/python -m grading.cli.demo_course $(DEMO)

autograde: venv
	$(BIN)/python -m grading.cli.grade_class --course $(COURSE) --workers $(WORKERS) \
	  $(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(FORCE),--force)

# One student's failure never stops the others, nor `make demo` (each failure is printed with its reason).
feedback: venv
	$(BIN)/python -m grading.cli.feedback --course $(COURSE) --assignment $(ASSIGNMENT)

export: venv
	mkdir -p $(COURSE)/reports
	cd $(COURSE) && nbgrader export --to reports/grades.csv --log-level=WARN
	cd $(COURSE) && nbgrader export --exporter=grading.plugins.lms_export.ItemCsvExport \
	  --to reports/grades_with_items.csv --log-level=WARN
	cd $(COURSE) && nbgrader export --exporter=grading.plugins.lms_export.CanvasCsvExport \
	  --to reports/canvas_grades.csv --log-level=WARN
	@echo "export: $(COURSE)/reports/grades.csv, grades_with_items.csv, canvas_grades.csv (Canvas import)"

report: venv
	$(BIN)/python -m grading.cli.report --course $(COURSE)

roster:
	@test -n "$(CSV)" || { echo "usage: make roster CSV=roster.csv (columns id,first_name,last_name,email,lms_user_id)"; exit 2; }
	$(BIN)/python -m grading.cli.roster "$(CSV)"

# The zip replaces what was collected before; each student it holds gets their submission replaced by the LMS's.
collect-lms:
	@test -n "$(ZIP)" || { echo "usage: make collect-lms ZIP=submissions.zip [WORKSHEET=grading_worksheet.csv]"; exit 2; }
	rm -rf downloaded/$(ASSIGNMENT)/archive && mkdir -p downloaded/$(ASSIGNMENT)/archive
	cp "$(ZIP)" downloaded/$(ASSIGNMENT)/archive/
	nbgrader zip_collect $(ASSIGNMENT) --force --log-level=WARN \
	  $(if $(WORKSHEET),--LmsCollector.moodle_worksheet="$(WORKSHEET)")
	@echo "collect-lms: submitted/ holds $$(ls submitted 2>/dev/null | wc -l) students; next: make autograde"

# A copy of release/ (never release/ itself); an existing copy is the student's work and is kept.
# Only nbgrader's Validate button: its config is grading/student_lab/jupyter/, read by this Lab alone.
student: venv
	$(BIN)/python -m grading.student_lab --work student-work

bench: venv system-deps release
	$(BIN)/python benchmarks/bench_gradcheck.py --trials 10000
	$(BIN)/python benchmarks/bench_rpc.py --calls 1000
	$(BIN)/python benchmarks/bench_test_cells.py --rounds 9
	$(BIN)/python benchmarks/bench_class.py --students 40 --workers $(WORKERS)
	$(BIN)/python benchmarks/bench_pool.py --students 12 --workers $(WORKERS)

test: venv system-deps
	$(BIN)/python -m pytest tests

# Everything but the end-to-end class runs (marked slow), for a quick loop while editing.
# Neither test target rebuilds release/: the committed release is what the drift test checks.
test-fast: venv system-deps
	$(BIN)/python -m pytest tests -m "not slow"

# Build copies and the demo only: the real class's gradebook, submissions and feedback are never deleted by make.
clean: demo-clean
	rm -rf source/$(ASSIGNMENT)/nn.py downloaded
