# Both targets set everything up on first use (see tasks.py), then run.
PYTHON ?= python3

.DEFAULT_GOAL := help

.PHONY: help lab test site site-students bench bench-photo bench-memory bench-grading bench-hub grade nbgrader-course no-answers explain hub setup

help:   ## list the commands (a bare `make` does this; it starts nothing)
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

lab:    ## your copy of the course in JupyterLab (my-course/: lessons, exercises, data; updates keep your edits)
	$(PYTHON) tasks.py lab

test:   ## unit tests and every notebook re-executed by nbval
	$(PYTHON) tasks.py test

site:   ## the course as a static website in build/site (offline, from the committed notebooks)
	$(PYTHON) tasks.py site

site-students:  ## the students' site in build/site-students: no teacher's guide; make site-students ARGS=--without-answers leaves the answers out too
	$(PYTHON) tasks.py site --students --out build/site-students $(ARGS)

bench:  ## CAM speed and memory, as ratios to one inference forward
	$(PYTHON) tasks.py bench

bench-photo:  ## a 12-megapixel phone photo through load_image, grad_cam, overlay_cam, show_cam: time and memory
	$(PYTHON) tasks.py bench-photo

bench-memory:  ## each lesson notebook in a fresh kernel: its peak memory and time
	$(PYTHON) tasks.py bench-memory

bench-hub:  ## N learners log in to make hub at once and run lesson 00: times, memory, learners per server: make bench-hub N=8 [ARGS='--json out.json']
	$(PYTHON) tasks.py bench-hub --learners $(or $(N),8) $(ARGS)

grade:  ## grade a class's exercise notebooks: make grade SUBMISSIONS=folder [JOBS=2] [ARGS='--out grades --json']
	$(if $(SUBMISSIONS),,$(error Name the folder of submissions: make grade SUBMISSIONS=folder))
	$(PYTHON) tasks.py grade "$(SUBMISSIONS)" $(if $(JOBS),--jobs $(JOBS)) $(ARGS)

bench-grading:  ## 60 submissions graded with --jobs 1 and 2: submissions per minute
	$(PYTHON) tasks.py bench-grading $(ARGS)

.PHONY: mutation
mutation:  ## how many automatic wrong answers (mutants of the solutions) the exercise checks catch: make mutation [ARGS='--exercises a --json out.json']
	$(PYTHON) tasks.py mutation $(ARGS)

nbgrader-course:  ## an nbgrader course folder, one assignment per exercise, for grading on a JupyterHub: make nbgrader-course OUT=folder
	$(PYTHON) tasks.py nbgrader-course $(OUT)

no-answers:  ## the notebooks without the worked answers, for teachers: make no-answers [OUT=folder]
	$(PYTHON) tasks.py no-answers $(OUT)

explain:  ## CAM overlays and a CSV for a folder of images: make explain ARGS='data --top-k 3 --out cams'
	$(PYTHON) tasks.py explain $(ARGS)

hub:    ## a JupyterHub for a class on this machine: learners log in, get the course by an nbgitpuller link: make hub [ARGS='--port 8000 --class-list names.txt']
	$(PYTHON) tasks.py hub $(ARGS)

setup:  ## set everything up (the virtual environment in .venv), and start nothing
	$(PYTHON) tasks.py setup
