# The two commands of the README. Each creates .venv on first use (python3 -m venv + pip),
# so a fresh machine with Python 3.11 needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/config.yaml
CORES ?= all
# Debian/Ubuntu packages that give latexmk + pdflatex for paper/main.pdf.
TEX_PACKAGES := texlive-latex-base texlive-latex-recommended latexmk

# Every config's outputs live apart: results/<run>/, figures/<run>/, paper/<run>/main.pdf, where
# <run> is the config's `run:` key or its file name (config.yaml -> default, smoke.yaml -> smoke).
RUN ?= default

.PHONY: reproduce test smoke report benchmark install tex data unlock clean clean-run

reproduce: $(VENV)/.installed tex data  ## run the whole workflow on $(CONFIG): results, figures, paper/<run>/main.pdf
	$(BIN)/python -m modelcollapse check-config $(CONFIG)
	$(BIN)/snakemake --configfile $(CONFIG) --cores $(CORES)

test: $(VENV)/.installed  ## run the test suite
	$(BIN)/python -m pytest

smoke: $(VENV)/.installed tex  ## the whole workflow at seconds scale, into results/smoke/ etc.
	$(BIN)/python -m modelcollapse check-config config/smoke.yaml
	$(BIN)/snakemake --configfile config/smoke.yaml --cores $(CORES)

report: $(VENV)/.installed  ## Snakemake's HTML report of the last run of $(CONFIG)
	$(BIN)/snakemake --configfile $(CONFIG) --report report.html

unlock: $(VENV)/.installed  ## after Snakemake was killed (kill -9, power loss): release its lock on the folder
	$(BIN)/snakemake --configfile $(CONFIG) --unlock

benchmark: $(VENV)/.installed  ## timing tables, not tests (a few minutes each)
	for b in gaussian discrete gmm vae lm devices; do $(BIN)/python benchmarks/$$b.py || exit 1; done

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# What the default run needs beyond Python: latexmk + pdflatex for the paper, and Fashion-MNIST's
# IDX files for the VAE (Debian's dataset-fashion-mnist; the loader also takes data_dir or the cache).
# Installed when we may (root or password-less sudo on Debian/Ubuntu); otherwise we stop before any
# work and say how.
DATA_PACKAGES := dataset-fashion-mnist
HAVE_FASHION := $(BIN)/python -c "from modelcollapse.datasets import images; images.load_images('fashion_mnist', split='test', download=False)"
APT_INSTALL = if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$need; \
	else \
		echo "missing: $$need. Install them (Debian/Ubuntu: sudo apt-get install $$need). Elsewhere: LaTeX from"; \
		echo "MacTeX or 'brew install --cask basictex' then 'sudo tlmgr install latexmk'; Fashion-MNIST's four IDX"; \
		echo ".gz files into \$$MODELCOLLAPSE_DATA_DIR/fashion_mnist/ (or set data_dir in the config)."; \
		exit 1; \
	fi

tex:
	@need=""; command -v latexmk >/dev/null 2>&1 || need="$(TEX_PACKAGES)"; \
	[ -z "$$need" ] && exit 0; echo "installing LaTeX: $$need"; $(APT_INSTALL)

data: $(VENV)/.installed
	@need=""; $(HAVE_FASHION) 2>/dev/null || need="$(DATA_PACKAGES)"; \
	[ -z "$$need" ] && exit 0; echo "installing Fashion-MNIST for the VAE: $$need"; $(APT_INSTALL)

clean-run:  ## remove one run's outputs: make clean-run RUN=smoke
	rm -rf results/$(RUN) figures/$(RUN) paper/$(RUN) logs/$(RUN)

clean:  ## remove every run's results, figures and paper builds (keeps .venv)
	rm -rf results logs figures/*/ paper/*/generated paper/*/build paper/*/main.pdf .snakemake report.html
	find paper -mindepth 1 -maxdepth 1 -type d -empty -delete
