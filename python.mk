# python.mk -- the Python package (examples/python): its C accelerator, and
# its tests on CPython (accelerated and pure) and PyPy.  Included by the
# Makefile; `make test` runs test-python first.
#
#   make python        build examples/python/modelpack/_modelpack*.so
#   make test-python   run examples/python/tests on every interpreter

PYTHON  = /usr/bin/python3
PYPY    = pypy3
PYDIR   = examples/python
DEPS   += python3-dev python3-setuptools python3-pip python3-django pypy3 python3-matplotlib
PYTESTS = tests.test_core tests.test_accel tests.test_django tests.test_lazy tests.test_example_project tests.test_install
# The accelerator is CPython-only (accel.py skips it on PyPy).
PYPYTESTS = tests.test_core tests.test_django tests.test_lazy tests.test_example_project

.PHONY: python test-python

python: modelpack.so $(PYDIR)/.accel-built

# setup.py builds the accelerator and, into modelpack/lib/, the extension.
$(PYDIR)/.accel-built: $(PYDIR)/modelpack/_modelpack.c $(SRC) $(HDR) $(PYDIR)/setup.py
	cd $(PYDIR) && $(PYTHON) setup.py -q build_ext --inplace
	@touch $@

test-python: deps modelpack.so python
	@echo "== Python: CPython $$($(PYTHON) -c 'import sys; print(sys.version.split()[0])') with the C accelerator"
	cd $(PYDIR) && MODELPACK_EXTENSION=$(CURDIR)/modelpack $(PYTHON) -m unittest $(PYTESTS)
	@echo "== Python: CPython, pure-Python decoder"
	cd $(PYDIR) && MODELPACK_PURE=1 MODELPACK_EXTENSION=$(CURDIR)/modelpack $(PYTHON) -m unittest $(PYTESTS)
	@echo "== Python: PyPy"
	cd $(PYDIR) && PYTHONPATH=/usr/lib/python3/dist-packages MODELPACK_EXTENSION=$(CURDIR)/modelpack $(PYPY) -m unittest $(PYPYTESTS)

test: test-python
