# Course bundle for "In-class exercise 9: Deep Learning (Part 1B)".
# This Makefile is the table of contents: every job the bundle does is a target here.
#
#   make demo      set everything up and grade the sample class in its own course directory, demo/ (the main job)
#   make test      the whole test suite (what CI runs)
#
# Building blocks:
#   make venv          .venv from the exact pins in requirements.txt + constraints.txt, with grading/ installed
#                      editable (only when they or pyproject.toml changed)
#   make system-deps   Debian packages: bubblewrap (grading sandbox), chromium (feedback page test), postgresql
#                      (the PostgreSQL gradebook test)
#   make release       nbgrader generate_assignment: source/ -> release/ (commit the result)
#   make instructor    execute the instructor notebook in a fresh kernel (reproduces the seed's numbers)
#   make validate      nbgrader validate on the instructor notebook (must pass) and the release (must fail)
#   make class         the demo course demo/: course files, its release, the sample class (grading/cli/demo_course.py)
#   make demo-clean    delete demo/ (the real class is never touched by the demo)
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
#   make bench         benchmarks: checker false failures, class grading vs plain nbgrader (slow)
#
# A real class from an LMS (README, "Grades from and to an LMS"):
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
        report bench clean student roster collect-lms

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
	  { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	  $(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt && \
	  $(BIN)/python -m pip install --quiet --no-deps -e . && \
	  echo "$(PINS)" > $(VENV_STAMP); \
	fi

system-deps:
	@command -v bwrap >/dev/null && command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/initdb \
	  >/dev/null 2>&1 || { \
	  echo "installing Debian packages bubblewrap, chromium and postgresql (needs root)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap chromium \
	  postgresql >/dev/null; }

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

test: venv system-deps
	$(BIN)/python -m pytest tests

# Everything but the end-to-end class runs (marked slow), for a quick loop while editing.
# Neither test target rebuilds release/: the committed release is what the drift test checks.
test-fast: venv system-deps
	$(BIN)/python -m pytest tests -m "not slow"

# Build copies and the demo only: the real class's gradebook, submissions and feedback are never deleted by make.
clean: demo-clean
	rm -rf source/$(ASSIGNMENT)/nn.py downloaded
