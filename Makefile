# Set-up and everyday commands. `make demo` and `make test` work on a fresh Debian machine
# with Python 3.11+; `make system-deps` (root) installs the tools the tests measure against.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[monitor,postgresql,speedtest,audio,dashboard,test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/sessionready demo --data-dir .demo $(DEMO_ARGS)

# The suite runs on TEST_WORKERS processes (pytest-xdist). Most tests wait on real time
# (processes, sockets, sleeps of the thing under test), so more workers than cores pays;
# files that own something machine-wide share one worker (tests/conftest.py, SHARED_GROUPS).
# Four: five made it slower (10 min 41 s against 10 min 18 s in fresh-clone runs of 2026-12-07),
# although four keep the CPU only 63 % busy on average: while a quiet test runs it has a core to
# itself and every other test shares the other one (tests/quiet.py).
# The 15 slowest tests are listed at the end. TEST_WORKERS=0 runs everything in one process.
# Python's bytecode caches stay on even where PYTHONDONTWRITEBYTECODE is set (this project's
# machines set it): the suite starts hundreds of Python processes (monitors, agents, CLI commands,
# calendar import workers), and without the caches each compiles the project's modules again
# (a monitor process's imports: 0.58 CPU-s without, 0.45 with; where the CPU is busy, that is
# wall time). compileall writes them once up front, before four workers would each compile the
# same modules while they collect.
TEST_WORKERS ?= 4
test: install
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m compileall -q agents monitor sessionready dashboard tests
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder --durations=15

# Everything but the network-namespace lab, the real-Prometheus test and the audio lab.
test-fast: install
	$(BIN)/pytest -m "not lab and not prometheus and not audio"

bench: install
	$(BIN)/python -m benchmarks.run

# Debian packages the tests need: the network lab's reference tools and shaping, a real
# Prometheus, the audio lab (PulseAudio virtual microphone, PortAudio, sox, espeak-ng),
# openssl for certificates, PostgreSQL (the store tests start their own server: tests/pg.py),
# Chromium and Firefox ESR for the browser check's page (Firefox is driven over its own
# WebDriver BiDi: no geckodriver). Runs as root (CI) or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		python3-venv iproute2 nftables iperf3 irtt iputils-ping prometheus openssl ca-certificates \
		pulseaudio pulseaudio-utils libasound2-plugins libportaudio2 sox espeak-ng util-linux \
		systemd prometheus-node-exporter chromium chromium-driver firefox-esr postgresql haproxy

clean:
	rm -rf $(VENV) .demo .pytest_cache build *.egg-info
