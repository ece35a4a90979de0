"""turngym's own kernel tasks in KernelBench format, graded like KernelBench's levels 1–3.

Level 1 is one operator (elementwise, reductions, softmax, norms, matmul), level 2 an operator with
a fused epilogue or prologue (linear + activation, residual + layernorm, conv + relu, ...), level 3
a small block (attention, an MLP, a conv block, a pre-norm feed-forward block). Every task has a
reference ``ModelNew`` written against the shared C++ library of :mod:`cpp_library`; tasks with two
cpp stages are refinement tasks: the first stage is correct but naive (unfused kernels, strided
loops), the second the optimised kernel the expert moves to after the first turn's feedback. A few
tasks also have a Triton solution (run on CPU by the Triton interpreter) and a CUDA one (GPU only).
"""

from __future__ import annotations

from turngym.envs.kernel.cpp_library import CPP_PRELUDE
from turngym.envs.kernel.cuda_solutions import CUDA_SOLUTIONS
from turngym.envs.kernel.tasks import KernelTask

_HEAD = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n"

_TRITON_HEAD = "import torch\nimport torch.nn as nn\nimport triton\nimport triton.language as tl\n\n"


def _ref(body: str, inputs: str, init: str = "[]") -> str:
    return (
        f"{_HEAD}{body.strip()}\n\n\ndef get_inputs():\n    return {inputs}\n\n\n"
        f"def get_init_inputs():\n    return {init}\n"
    )


def _model(init_args: str, init_body: str, forward_args: str, forward_body: str, name: str = "Model") -> str:
    return (
        f"class {name}(nn.Module):\n    def __init__(self{init_args}):\n        super().__init__()\n"
        f"{init_body or '        pass'}\n\n    def forward(self, {forward_args}):\n{forward_body}\n"
    )


def _new(init_args: str, init_body: str, forward_args: str, forward_body: str) -> str:
    return CPP_PRELUDE + _model(init_args, init_body, forward_args, forward_body, name="ModelNew")


# ---- reusable forward bodies -----------------------------------------------------------------
_X = "torch.randn(64, 4096)"
_ROWS = "torch.randn(256, 1024)"

_TRITON_ELEMENTWISE = """
@triton.jit
def _{name}_kernel(x_ptr, {extra_ptr}out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    x = tl.load(x_ptr + offsets, mask=mask)
{body}
    tl.store(out_ptr + offsets, out, mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, {args}):
        out = torch.empty_like(x)
        n = x.numel()
        _{name}_kernel[(triton.cdiv(n, 4096),)]({call}out, n, BLOCK=4096)
        return out
"""

_TRITON_SOFTMAX = """
@triton.jit
def _softmax_kernel(x_ptr, out_ptr, cols, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    offsets = tl.arange(0, BLOCK)
    mask = offsets < cols
    x = tl.load(x_ptr + row * cols + offsets, mask=mask, other=-float("inf"))
    x = x - tl.max(x, axis=0)
    e = tl.exp(x)
    tl.store(out_ptr + row * cols + offsets, e / tl.sum(e, axis=0), mask=mask)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        out = torch.empty_like(x)
        rows, cols = x.shape
        _softmax_kernel[(rows,)](x, out, cols, BLOCK=triton.next_power_of_2(cols))
        return out
"""


def _triton_elementwise(name: str, body: str, binary: bool = False) -> str:
    return _TRITON_HEAD + _TRITON_ELEMENTWISE.format(
        name=name,
        extra_ptr="y_ptr, " if binary else "",
        body=body,
        args="x, y" if binary else "x",
        call="x, y, " if binary else "x, ",
    )


def _lin(i: str, o: str) -> str:
    return f"nn.Linear({i}, {o})"


_RMS_INIT = "        self.weight = nn.Parameter(torch.rand(dim) + 0.5)\n        self.eps = 1e-6"
_MLP_INIT = f"        self.fc1 = {_lin('dim', 'hidden')}\n        self.fc2 = {_lin('hidden', 'dim')}"

# (task id, level, reference, cpp stages, triton solution or "")
_SPECS: tuple[tuple[str, int, str, tuple[str, ...], str], ...] = (
    (
        "1_ReLU", 1,
        _ref(_model("", "", "x", "        return torch.relu(x)"), f"[{_X}]"),
        (_new("", "", "x", "        return _lib.relu(x.contiguous())"),),
        _triton_elementwise("relu", "    out = tl.maximum(x, 0.0)"),
    ),
    (
        "2_Add", 1,
        _ref(_model("", "", "x, y", "        return x + y"), f"[{_X}, {_X}]"),
        (_new("", "", "x, y", "        return _lib.add(x.contiguous(), y.contiguous())"),),
        _triton_elementwise("add", "    out = x + tl.load(y_ptr + offsets, mask=mask)", binary=True),
    ),
    (
        "3_LeakyReLU", 1,
        _ref(
            _model(", negative_slope", "        self.negative_slope = negative_slope", "x",
                   "        return F.leaky_relu(x, self.negative_slope)"),
            f"[{_X}]", "[0.05]",
        ),
        (_new(", negative_slope", "        self.negative_slope = negative_slope", "x",
              "        return _lib.leaky_relu(x.contiguous(), self.negative_slope)"),),
        "",
    ),
    (
        "4_GELUTanh", 1,
        _ref(_model("", "", "x", '        return F.gelu(x, approximate="tanh")'), f"[{_X}]"),
        (_new("", "", "x", "        return _lib.gelu_tanh(x.contiguous())"),),
        "",
    ),
    (
        "5_Sigmoid", 1,
        _ref(_model("", "", "x", "        return torch.sigmoid(x)"), f"[{_X}]"),
        (_new("", "", "x", "        return _lib.sigmoid(x.contiguous())"),),
        _triton_elementwise("sigmoid", "    out = 1.0 / (1.0 + tl.exp(-x))"),
    ),
    (
        "6_SumLastDim", 1,
        _ref(_model("", "", "x", "        return x.sum(dim=-1)"), f"[{_ROWS}]"),
        (_new("", "", "x", "        return _lib.row_sum(x.contiguous())"),),
        "",
    ),
    (
        "7_MaxLastDim", 1,
        _ref(_model("", "", "x", "        return x.amax(dim=-1)"), f"[{_ROWS}]"),
        (_new("", "", "x", "        return _lib.row_max(x.contiguous())"),),
        "",
    ),
    (
        "8_Softmax", 1,
        _ref(_model("", "", "x", "        return torch.softmax(x, dim=-1)"), f"[{_ROWS}]"),
        (_new("", "", "x", "        return _lib.softmax_rows(x.contiguous(), 1.0)"),),
        _TRITON_HEAD + _TRITON_SOFTMAX,
    ),
    (
        "9_LayerNorm", 1,
        _ref(_model(", dim", "        self.norm = nn.LayerNorm(dim)", "x", "        return self.norm(x)"),
             f"[{_ROWS}]", "[1024]"),
        (_new(", dim", "        self.norm = nn.LayerNorm(dim)", "x",
              "        n = self.norm\n"
              "        return _lib.layernorm_rows(x.contiguous(), n.weight, n.bias, n.eps)"),),
        "",
    ),
    (
        "10_RMSNorm", 1,
        _ref(
            _model(", dim", _RMS_INIT, "x",
                   "        return "
                       "x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight"),
            f"[{_ROWS}]", "[1024]",
        ),
        (_new(", dim", _RMS_INIT, "x",
              "        return _lib.rmsnorm_rows(x.contiguous(), self.weight, self.eps)"),),
        "",
    ),
    (
        "11_Matmul", 1,
        _ref(_model("", "", "a, b", "        return torch.matmul(a, b)"),
             "[torch.randn(128, 192), torch.randn(192, 160)]"),
        (
            _new("", "", "a, b", "        return _lib.matmul_naive(a.contiguous(), b.contiguous())"),
            _new("", "", "a, b", "        return _lib.matmul_tiled(a.contiguous(), b.contiguous())"),
        ),
        "",
    ),
    (
        "12_LinearReLU", 2,
        _ref(_model(", d_in, d_out", f"        self.fc = {_lin('d_in', 'd_out')}", "x",
                    "        return torch.relu(self.fc(x))"), "[torch.randn(64, 256)]", "[256, 128]"),
        (
            _new(", d_in, d_out", f"        self.fc = {_lin('d_in', 'd_out')}", "x",
                 "        return _lib.relu(_lib.linear(x.contiguous(), self.fc.weight, self.fc.bias, 0))"),
            _new(", d_in, d_out", f"        self.fc = {_lin('d_in', 'd_out')}", "x",
                 "        return _lib.linear(x.contiguous(), self.fc.weight, self.fc.bias, 1)"),
        ),
        "",
    ),
    (
        "13_LinearGELU", 2,
        _ref(_model(", d_in, d_out", f"        self.fc = {_lin('d_in', 'd_out')}", "x",
                    '        return F.gelu(self.fc(x), approximate="tanh")'),
             "[torch.randn(64, 256)]", "[256, 128]"),
        (_new(", d_in, d_out", f"        self.fc = {_lin('d_in', 'd_out')}", "x",
              "        return _lib.linear(x.contiguous(), self.fc.weight, self.fc.bias, 2)"),),
        "",
    ),
    (
        "14_SwishBias", 2,
        _ref(_model(", dim", "        self.bias = nn.Parameter(torch.randn(dim))", "x",
                    "        return x * torch.sigmoid(x) + self.bias"), f"[{_X}]", "[4096]"),
        (_new(", dim", "        self.bias = nn.Parameter(torch.randn(dim))", "x",
              "        return _lib.swish_bias(x.contiguous(), self.bias)"),),
        "",
    ),
    (
        "15_ScaledSoftmax", 2,
        _ref(_model(", scale", "        self.scale = scale", "x", "        return "
            "torch.softmax(x * self.scale, dim=-1)"),
             f"[{_ROWS}]", "[0.125]"),
        (_new(", scale", "        self.scale = scale", "x", "        return "
            "_lib.softmax_rows(x.contiguous(), self.scale)"),),
        "",
    ),
    (
        "16_ResidualLayerNorm", 2,
        _ref(_model(", dim", "        self.norm = nn.LayerNorm(dim)", "x, residual", "        return "
            "self.norm(x + residual)"),
             f"[{_ROWS}, {_ROWS}]", "[1024]"),
        (_new(", dim", "        self.norm = nn.LayerNorm(dim)", "x, residual",
              "        n = self.norm\n"
              "        return "
                  "_lib.add_layernorm(x.contiguous(), residual.contiguous(), n.weight, n.bias, n.eps)"),),
        "",
    ),
    (
        "17_GLU", 2,
        _ref(_model("", "", "x", "        a, b = x.chunk(2, dim=-1)\n        return a * torch.sigmoid(b)"),
             f"[{_ROWS}]"),
        (_new("", "", "x", "        return _lib.glu_rows(x.contiguous())"),),
        "",
    ),
    (
        "18_GemmScaleResidual", 2,
        _ref(_model(", alpha", "        self.alpha = alpha", "a, b, residual",
                    "        return self.alpha * torch.matmul(a, b) + residual"),
             "[torch.randn(96, 128), torch.randn(128, 112), torch.randn(96, 112)]", "[0.5]"),
        (_new(", alpha", "        self.alpha = alpha", "a, b, residual",
              "        return "
                  "_lib.gemm_scale_residual(a.contiguous(), b.contiguous(), residual.contiguous(), "
                  "self.alpha)"),),
        "",
    ),
    (
        "19_Conv3x3ReLU", 2,
        _ref(_model(", c_in, c_out", "        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)", "x",
                    "        return torch.relu(self.conv(x))"), "[torch.randn(2, 8, 24, 24)]", "[8, 16]"),
        (
            _new(", c_in, c_out", "        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)", "x",
                 "        return "
                     "_lib.relu(_lib.conv2d(x.contiguous(), self.conv.weight, self.conv.bias, 1, False))"),
            _new(", c_in, c_out", "        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)", "x",
                 "        return _lib.conv2d(x.contiguous(), self.conv.weight, self.conv.bias, 1, True)"),
        ),
        "",
    ),
    (
        "20_Attention", 3,
        _ref(_model("", "", "q, k, v",
                    "        scores = torch.matmul(q, k.transpose(-1, -2)) / q.shape[-1] ** 0.5\n"
                    "        return torch.matmul(torch.softmax(scores, dim=-1), v)"),
             "[torch.randn(4, 64, 32), torch.randn(4, 64, 32), torch.randn(4, 64, 32)]"),
        (
            _new("", "", "q, k, v",
                 "        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()\n"
                 "        scores = _lib.bmm(q, k, True, q.shape[-1] ** -0.5)\n"
                 "        return _lib.bmm(_lib.softmax_rows(scores, 1.0), v, False, 1.0)"),
            _new("", "", "q, k, v",
                 "        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()\n"
                 "        return _lib.attention(q, k, v, q.shape[-1] ** -0.5)"),
        ),
        "",
    ),
    (
        "21_MLP", 3,
        _ref(_model(", dim, hidden", _MLP_INIT,
                    "x", '        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))'),
             "[torch.randn(64, 128)]", "[128, 256]"),
        (_new(", dim, hidden", _MLP_INIT,
              "x",
              "        h = _lib.linear(x.contiguous(), self.fc1.weight, self.fc1.bias, 2)\n"
              "        return _lib.linear(h, self.fc2.weight, self.fc2.bias, 0)"),),
        "",
    ),
    (
        "22_ConvBlock", 3,
        _ref(_model(", c_in, c_out", "        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)", "x",
                    "        return "
                        "F.max_pool2d(torch.relu(self.conv(x)), 2)"),
             "[torch.randn(2, 8, 24, 24)]", "[8, 16]"),
        (_new(", c_in, c_out", "        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)", "x",
              "        y = _lib.conv2d(x.contiguous(), self.conv.weight, self.conv.bias, 1, True)\n"
              "        return _lib.maxpool2x2(y)"),),
        "",
    ),
    (
        "23_PreNormFFN", 3,
        _ref(_model(", dim, hidden",
                    f"        self.norm = nn.LayerNorm(dim)\n        self.fc1 = {_lin('dim', 'hidden')}\n"
                    f"        self.fc2 = {_lin('hidden', 'dim')}",
                    "x", '        return x + self.fc2(F.gelu(self.fc1(self.norm(x)), approximate="tanh"))'),
             "[torch.randn(64, 128)]", "[128, 256]"),
        (_new(", dim, hidden",
              f"        self.norm = nn.LayerNorm(dim)\n        self.fc1 = {_lin('dim', 'hidden')}\n"
              f"        self.fc2 = {_lin('hidden', 'dim')}",
              "x",
              "        x = x.contiguous()\n        n = self.norm\n"
              "        h = _lib.layernorm_rows(x, n.weight, n.bias, n.eps)\n"
              "        h = _lib.linear(h, self.fc1.weight, self.fc1.bias, 2)\n"
              "        return _lib.add(x, _lib.linear(h, self.fc2.weight, self.fc2.bias, 0))"),),
        "",
    ),
    (
        "24_AttentionResidualNorm", 3,
        _ref(_model(", dim", "        self.norm = nn.LayerNorm(dim)", "x",
                    "        scores = torch.matmul(x, x.transpose(-1, -2)) / x.shape[-1] ** 0.5\n"
                    "        y = torch.matmul(torch.softmax(scores, dim=-1), x)\n"
                    "        return self.norm(x + y)"),
             "[torch.randn(4, 64, 32)]", "[32]"),
        (_new(", dim", "        self.norm = nn.LayerNorm(dim)", "x",
              "        x = x.contiguous()\n        n = self.norm\n"
              "        y = _lib.attention(x, x, x, x.shape[-1] ** -0.5)\n"
              "        return _lib.add_layernorm(x, y, n.weight, n.bias, n.eps)"),),
        "",
    ),
)  # fmt: skip


def _build() -> tuple[KernelTask, ...]:
    tasks = []
    for task_id, level, reference, cpp, triton in _SPECS:
        solutions = {"cpp": cpp, **({"triton": (triton,)} if triton else {})}
        if task_id in CUDA_SOLUTIONS:
            solutions["cuda"] = (CUDA_SOLUTIONS[task_id],)
        tasks.append(KernelTask(task_id=task_id, level=level, reference=reference, solutions=solutions))
    return tuple(tasks)


BUILTIN_TASKS: tuple[KernelTask, ...] = _build()
"""The built-in tasks, level 1 first."""
