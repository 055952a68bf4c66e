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
