"""The core imports and runs with torch, numpy and h5py only (lava-dl / SpikingJelly blocked)."""
import subprocess
import sys
import textwrap


def test_core_without_lava_or_spikingjelly():
    code = textwrap.dedent("""
        import sys, importlib.abc
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('lava', 'spikingjelly', 'matplotlib', 'sklearn'):
                    raise ImportError('blocked: ' + name)
        sys.meta_path.insert(0, Block())
        import torch, sj2lava
        net = torch.nn.Sequential(
            sj2lava.BlockContainer(torch.nn.Conv2d(1, 2, 3), sj2lava.CubaLIFNode(1.0, 0.0), 'm'),
            sj2lava.BlockContainer(torch.nn.Flatten(), None, 'm'))
        out = net(torch.ones(4, 2, 1, 5, 5))
        out.sum().backward()
        assert not any(m.split('.')[0] in ('lava', 'spikingjelly') for m in sys.modules)
        try:
            net[0].to_lava_block()
        except ImportError as e:
            assert 'sj2lava[lava]' in str(e), e
        else:
            raise AssertionError('lava-dl should be unavailable')
        print('ok')
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_the_core_imports_no_front_end_and_names_no_framework():
    """Every framework lives in sj2lava/frontends/: no other module imports a front-end or a framework package, or
    names one for a lazy import. The package's entry points assemble it (__init__ registers the front-ends) or run
    jobs that use frameworks (cli, demo), and are the only exceptions."""
    import ast
    import re
    from pathlib import Path

    pkg = Path(__file__).resolve().parent.parent / "sj2lava"
    framework = re.compile(r"^(spikingjelly|snntorch|nir|norse|sinabs|rockpool|lava\.lib\.dl\.slayer)(\.\w+)*$")
    entry = {"__init__.py", "__main__.py", "cli.py", "demo.py"}
    found = []
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg)
        if rel.parts[0] == "frontends" or str(rel) in entry:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
                if "frontends" in ("." * node.level + (node.module or "")).split(".") or any(
                        a.name == "frontends" for a in node.names):
                    found.append(f"{rel}:{node.lineno} imports a front-end")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names = [node.value]
            else:
                continue
            found += [f"{rel}:{getattr(node, 'lineno', '?')} names {n}" for n in names if framework.match(n)]
    assert not found, "\n".join(found)
