"""Python source that makes ``import torch`` fail, for subprocesses that prove a code path is torch-free."""

BLOCK_TORCH = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ImportError('torch is blocked for this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
)
