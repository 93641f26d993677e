"""Imports run one way: a module imports only from its own layer or the layers below it.

The layers, from the bottom (``LAYERS``; a module's layer is that of its longest listed prefix):

  0 base        pure Python, no JAX: ``small_e_jax.config``, the commands' shared helpers
                (``small_e_jax.cli``'s ``__init__``: one-line errors, exit codes, the flag style),
                ``kernels.block_dims`` (the fused decode block's dimensions and options, which
                the config validates)
  1 kernels     ``kernels.gla``
  2 model       the model, text, codec (models, layers, weights), checkpoint (finding, reading
                and writing them), sharding, optimizer, sampling, metrics, audio I/O
                (``small_e_jax.audio``) and the other building blocks
  3 train / decoding / data
                ``small_e_jax.train``, ``decoding``, codec training (``small_e_jax.codec.training``:
                its data, losses, discriminators, steps and loop), ``data_source`` (the trainer's
                data sources), ``data_pipeline``
  4 inference / eval
                ``small_e_jax.inference``, ``ist``, ``small_e_jax.eval`` (with the codec's
                quality evaluation)
  5 entry points the commands, one module each in ``small_e_jax/cli/`` (``small_e_jax.cli.train``,
                ``synthesize``, ``evaluate``, ...; the package's ``__init__``, the helpers they share,
                is in layer 0), and the libraries only they use: ``pretrained``, ``export``, ``serve``
  6 outside the core: ``experiments`` (definitions over the entry points), the measuring tools
                (``benchmarks``, the kernel benchmarks included), the forwarding modules kept at
                old paths for compatibility (``COMPAT_SHIMS``) and the old command paths that
                only run their command (``COMMAND_ALIASES``)

and these rules besides:
  * ``data_pipeline`` never imports training, decoding, inference or evaluation (nor their commands);
  * no module outside ``experiments/`` imports ``experiments``;
  * no module outside the measuring tools (``benchmarks``) imports them; no module imports a
    compatibility forwarder;
  * no circles between modules, ``if __name__ == "__main__":`` blocks included;
  * below the entry points, a module that is also a command keeps ``python -m`` working with a
    ``__main__`` block that runs its command in ``small_e_jax.cli`` by name
    (``runpy.run_module("small_e_jax.cli.<name>", run_name="__main__")``) and
    imports nothing of the project: the library never imports its own command. Every such name,
    and every old command path's, is a module that exists and is a command;
  * the commands live in ``small_e_jax.cli``: no other module of the core defines ``main``;
  * ``import small_e_jax.config`` (and loading a preset) loads no JAX (a fresh process).

Every import counts, lazy ones inside functions and those of ``__main__`` blocks too.
The checker reads the source (``ast``); it runs nothing of the project.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("small_e_jax", "kernels", "data_pipeline", "experiments", "benchmarks")

LAYERS: dict[str, int] = {
    # 0 base: pure Python, no JAX
    "small_e_jax": 0, "small_e_jax.cli": 0, "small_e_jax.config": 0, "kernels": 0, "kernels.block_dims": 0,
    # 1 kernels
    "kernels.gla": 1,
    # 2 model and building blocks
    "small_e_jax.model": 2, "small_e_jax.text": 2, "small_e_jax.codec": 2, "small_e_jax.checkpoint": 2,
    "small_e_jax.delay": 2, "small_e_jax.sampling": 2, "small_e_jax.sharding": 2, "small_e_jax.optim": 2,
    "small_e_jax.guidance": 2, "small_e_jax.synthetic_data": 2, "small_e_jax.gpu_graphs": 2,
    "small_e_jax.metrics": 2, "small_e_jax.workdir_lock": 2, "small_e_jax.shipped": 2, "small_e_jax.audio": 2,
    # the DAC codec, one job per module (their order among themselves: test_dac_modules_import_one_way)
    "small_e_jax.codec.dac_config": 2, "small_e_jax.codec.quantizer": 2, "small_e_jax.codec.dac": 2,
    "small_e_jax.codec.dac_codec": 2,
    # 3 train / decoding / data
    "small_e_jax.train": 3, "small_e_jax.decoding": 3, "small_e_jax.codec.training": 3,
    "small_e_jax.data_source": 3, "data_pipeline": 3,
    # 4 inference / eval
    "small_e_jax.inference": 4, "small_e_jax.ist": 4, "small_e_jax.eval": 4,
    # 5 entry points: the commands (small_e_jax/cli/), and the libraries only they use
    "small_e_jax.cli.train": 5, "small_e_jax.cli.synthesize": 5, "small_e_jax.cli.evaluate": 5,
    "small_e_jax.cli.export": 5, "small_e_jax.cli.serve": 5, "small_e_jax.cli.build_data": 5,
    "small_e_jax.cli.pretrained": 5, "small_e_jax.cli.ist": 5, "small_e_jax.cli.config": 5,
    "small_e_jax.cli.params": 5, "small_e_jax.cli.build_tokenizer": 5, "small_e_jax.cli.codec_convert": 5,
    "small_e_jax.cli.codec_train": 5, "small_e_jax.cli.codec_quality": 5, "small_e_jax.cli.example_clips": 5,
    "small_e_jax.cli.transport": 5, "small_e_jax.cli.corpus_text": 5, "small_e_jax.cli.transcribe": 5,
    "small_e_jax.cli.make_mini_corpus": 5, "small_e_jax.cli.make_synthetic_corpus": 5,
    "small_e_jax.export": 5, "small_e_jax.pretrained": 5, "small_e_jax.serve": 5,
    # 6 outside the core
    "experiments": 6, "benchmarks": 6, "kernels.benchmarks": 6,
}
# Old command paths kept so that documented `python -m` commands keep working: each only runs the
# command it names, by name (runpy), and imports nothing.
COMMAND_ALIASES = {
    "small_e_jax.bench_decode": "benchmarks.bench_decode",
    "small_e_jax.eval.throughput": "benchmarks.throughput",
    "small_e_jax.eval.profile_step": "benchmarks.profile_step",
    "small_e_jax.codec.profile_train": "benchmarks.codec_profile_train",
    "small_e_jax.codec.quality": "small_e_jax.cli.codec_quality",
    "data_pipeline.bench_loader": "benchmarks.bench_loader",
    **{f"kernels.benchmarks.{name}": f"benchmarks.kernels.{name}"
       for name in ("gla_bench", "gla_profile", "fla_baseline", "triton_resources", "block_step_bench", "pdl_probe")},
}
# Forwarding modules kept at old paths so that documented `python -m` commands and old imports
# keep working; each is the module it names (see its docstring).
COMPAT_SHIMS = {
    "small_e_jax.codec.train": "small_e_jax.codec.training.train",
    "small_e_jax.synthesize": "small_e_jax.cli.synthesize",
    "small_e_jax.evaluate": "small_e_jax.cli.evaluate",
    "small_e_jax.train_cli": "small_e_jax.cli.train",
}
MEASURING = ("benchmarks",)
# What data_pipeline must not import: training, decoding, inference, evaluation.
NOT_FOR_DATA = ("small_e_jax.train", "small_e_jax.data_source", "small_e_jax.decoding", "small_e_jax.codec.training",
                "small_e_jax.inference", "small_e_jax.ist", "small_e_jax.eval", "small_e_jax.export",
                "small_e_jax.pretrained", "small_e_jax.serve")
# The commands whose code data_pipeline's modules hand over to (their __main__ blocks); the others
# (train, synthesize, evaluate, ...) are out of its reach like the libraries above.
DATA_COMMANDS = ("small_e_jax.cli.build_data", "small_e_jax.cli.example_clips", "small_e_jax.cli.transport",
                 "small_e_jax.cli.corpus_text", "small_e_jax.cli.transcribe", "small_e_jax.cli.make_mini_corpus",
                 "small_e_jax.cli.make_synthetic_corpus")


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (None: not the project's)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _is_main_block(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` (a top-level statement)."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__")


def _imports(module: str, path: Path, main_block: bool = False) -> list[tuple[str, int]]:
    """(imported project module, line) for every import of ``module``, lazy ones included; those of
    its ``if __name__ == "__main__":`` block alone with ``main_block``, else all the others."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    tree.body = [node for node in tree.body if _is_main_block(node) == main_block]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(_resolve(alias.name), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in MODULES else _resolve(base), node.lineno))
    return [(target, line) for target, line in found if target and target != module]


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}
# What each module's `if __name__ == "__main__":` block imports: run as the program, never on import.
MAIN_GRAPH = {module: _imports(module, path, main_block=True) for module, path in MODULES.items()}


def _handoffs(path: Path) -> list[tuple[str, int]]:
    """(module, line) of every ``runpy.run_module("<module>", ...)`` in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run_module"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "runpy"):
            arg = node.args[0] if node.args else None
            found.append((arg.value if isinstance(arg, ast.Constant) else repr(ast.unparse(arg)), node.lineno))
    return found


# Which command each module runs by name (its __main__ block, or an old command path's whole file).
HANDOFFS = {module: _handoffs(path) for module, path in MODULES.items()}
ENTRY = 5  # the commands' layer
COMMANDS = "small_e_jax.cli"  # their package (its __init__: the shared helpers, layer 0)


def _layer(module: str) -> int | None:
    if module in COMPAT_SHIMS or module in COMMAND_ALIASES:
        return 6
    best = max((p for p in LAYERS if _under(module, p)), key=len, default=None)
    return None if best is None else LAYERS[best]


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _layer(m) is None] == [], "add the new modules to LAYERS"


def _command(module: str) -> bool:
    return _under(module, COMMANDS) and module != COMMANDS


def test_imports_run_down_the_layers():
    bad = [f"{_where(m, line)}: {m} (layer {_layer(m)}) imports {t} (layer {_layer(t)})"
           for m, targets in GRAPH.items() for t, line in targets
           if _layer(t) is not None and _layer(m) is not None and _layer(t) > _layer(m)]
    # A __main__ block is an entry point: it may reach up to the commands, no higher.
    bad += [f"{_where(m, line)}: the __main__ block of {m} imports {t} (layer {_layer(t)})"
            for m, targets in MAIN_GRAPH.items() for t, line in targets
            if _layer(t) is not None and _layer(m) is not None and _layer(t) > max(_layer(m), ENTRY)]
    assert bad == []


def test_commands_are_entry_points():
    assert [m for m in MODULES if _command(m) and _layer(m) != ENTRY] == [], "list them in LAYERS at the entry layer"
    runnable = [m for m in MODULES if _command(m) and _defines_main(MODULES[m])
                and any(_is_main_block(node) for node in ast.parse(MODULES[m].read_text()).body)]
    assert sorted(m for m in MODULES if _command(m)) == sorted(runnable), "each: main() and python -m"


def test_main_blocks_below_the_commands_run_their_command_by_name():
    """A module below the entry points keeps ``python -m`` working with a ``__main__`` block that
    runs its command from ``small_e_jax.cli`` by name (runpy) and imports nothing of the project."""
    bad = [f"{_where(m, line)}: the __main__ block of {m} imports {t} (run the command by name: runpy)"
           for m, targets in MAIN_GRAPH.items() if _layer(m) < ENTRY for t, line in targets]
    bad += [f"{_where(m, line)}: {m} runs {t}, which is not a command of small_e_jax.cli"
            for m, targets in HANDOFFS.items() if _layer(m) < ENTRY for t, line in targets if not _command(t)]
    assert bad == []


def test_every_module_run_by_name_is_a_command():
    """The names given to runpy: modules of the project, each with main() and a __main__ block."""
    def runnable(module: str) -> bool:
        path = MODULES.get(module)
        return path is not None and _defines_main(path) and any(_is_main_block(n) for n in ast.parse(path.read_text()).body)

    named = [(m, t, line) for m, targets in HANDOFFS.items() for t, line in targets]
    assert len(named) >= len(COMMAND_ALIASES) + 15  # the old command paths and the library modules' __main__ blocks
    assert [f"{_where(m, line)}: {t}" for m, t, line in named if not runnable(t)] == []


def test_old_command_paths_only_run_their_command():
    for alias, target in COMMAND_ALIASES.items():
        assert GRAPH[alias] == [] and MAIN_GRAPH[alias] == [], f"{alias} imports project code"
        assert [t for t, _ in HANDOFFS[alias]] == [target], alias


def _defines_main(path: Path) -> bool:
    return any(isinstance(node, ast.FunctionDef) and node.name == "main"
               for node in ast.parse(path.read_text(), str(path)).body)


def test_commands_live_in_cli():
    """The core's command lines are the modules of ``small_e_jax.cli``; the other modules are the
    library they call. Outside the core: experiments, measuring tools, compatibility forwarders."""
    outside = [m for m in MODULES if _layer(m) < 6 and not _command(m) and _defines_main(MODULES[m])]
    assert outside == [], "move main() and its argument parsing to a module of small_e_jax/cli/"


def _edges() -> list[tuple[str, str, int]]:
    """(module, used module, line): every import a module's file makes, and every command it runs
    by name."""
    return [(m, t, line) for graph in (GRAPH, MAIN_GRAPH, HANDOFFS) for m, targets in graph.items()
            for t, line in targets]


def test_data_pipeline_imports_no_training_or_inference():
    bad = [f"{_where(m, line)}: {m} imports {t}" for m, t, line in _edges() if _under(m, "data_pipeline")
           and m not in COMPAT_SHIMS and m not in COMMAND_ALIASES and (any(_under(t, p) for p in NOT_FOR_DATA)
                                          or _command(t) and t not in DATA_COMMANDS)]
    assert bad == []


def test_only_experiments_import_experiments():
    bad = [f"{_where(m, line)}: {m} imports {t}" for m, t, line in _edges() if not _under(m, "experiments")
           and _under(t, "experiments")]
    assert bad == []


def test_the_core_imports_no_measuring_tool_and_nothing_imports_a_shim():
    def measuring(module: str) -> bool:
        return any(_under(module, p) for p in MEASURING)

    bad = [f"{_where(m, line)}: {m} imports {t}" for m, t, line in _edges()
           if not measuring(m) and m not in COMPAT_SHIMS and m not in COMMAND_ALIASES and measuring(t)]
    bad += [f"{_where(m, line)}: {m} imports the compatibility forwarder {t} (import {COMPAT_SHIMS[t]})"
            for m, t, line in _edges() if t in COMPAT_SHIMS]
    assert bad == []


def test_dac_modules_import_one_way():
    """dac_codec -> dac -> quantizer -> dac_config, never back (config, quantiser, network, numpy I/O)."""
    order = ["small_e_jax.codec.dac_config", "small_e_jax.codec.quantizer", "small_e_jax.codec.dac",
             "small_e_jax.codec.dac_codec"]
    bad = [f"{_where(m, line)}: {m} imports {t}" for i, m in enumerate(order) for t, line in GRAPH[m]
           if t in order[i:]]
    assert bad == []


def test_compat_shims_forward_to_what_they_name():
    for shim, target in COMPAT_SHIMS.items():
        assert [t for t, _ in GRAPH[shim]] == [target], shim


def test_no_circles():
    """Tarjan's strongly connected components over the module graph: each must be one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w, _ in GRAPH[v] + MAIN_GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in MODULES:
        if module not in index:
            visit(module)
    assert circles == []


def test_config_loads_no_jax():
    code = ("import sys\n"
            "import small_e_jax.config as c\n"
            "c.load_config('tiny').validate()\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib', 'flax'))\n"
            "print(loaded)\n"
            "sys.exit(1 if loaded else 0)\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
