"""CUDA reference solutions (``load_inline`` with ``cuda_sources``) for a few built-in tasks.

They run on a GPU only (``benchmarks/kernel_gpu.py``); on CPU machines the cpp and Triton
solutions are the ones evaluated.
"""

from __future__ import annotations

_CUDA_HEAD = """import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r'''
#include <torch/extension.h>
{kernel}
'''

_ext = load_inline(
    name="turngym_gpu_{name}",
    cpp_sources="torch::Tensor run({args});",
    cuda_sources=CUDA_SRC,
    functions=["run"],
)
"""

_ELEMENTWISE = """
__global__ void k(const float* x, {extra_param}float* y, long n) {{
  long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
  if (i < n) {{ float v = x[i]; y[i] = {expr}; }}
}}
torch::Tensor run({args}) {{
  auto y = torch::empty_like(x);
  long n = x.numel();
  k<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), {extra_arg}y.data_ptr<float>(), n);
  return y;
}}
"""

_SOFTMAX = """
__global__ void k(const float* x, float* y, int cols) {
  extern __shared__ float buf[];
  const float* row = x + (long)blockIdx.x * cols;
  float* out = y + (long)blockIdx.x * cols;
  float m = -INFINITY;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) m = fmaxf(m, row[c]);
  buf[threadIdx.x] = m;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] = fmaxf(buf[threadIdx.x], buf[threadIdx.x + s]);
    __syncthreads();
  }
  m = buf[0];
  __syncthreads();
  float total = 0.f;
  for (int c = threadIdx.x; c < cols; c += blockDim.x) total += __expf(row[c] - m);
  buf[threadIdx.x] = total;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) buf[threadIdx.x] += buf[threadIdx.x + s];
    __syncthreads();
  }
  total = buf[0];
  for (int c = threadIdx.x; c < cols; c += blockDim.x) out[c] = __expf(row[c] - m) / total;
}
torch::Tensor run(torch::Tensor x) {
  auto y = torch::empty_like(x);
  int rows = x.size(0), cols = x.size(1);
  k<<<rows, 256, 256 * sizeof(float)>>>(x.data_ptr<float>(), y.data_ptr<float>(), cols);
  return y;
}
"""

_MODEL = """
class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, {params}):
        return _ext.run({call})
"""


def _elementwise(name: str, expr: str, binary: bool = False) -> str:
    args = "torch::Tensor x, torch::Tensor b" if binary else "torch::Tensor x"
    kernel = _ELEMENTWISE.format(
        extra_param="const float* b, " if binary else "",
        extra_arg="b.data_ptr<float>(), " if binary else "",
        expr=expr,
        args=args,
    )
    params = "x, y" if binary else "x"
    call = "x.contiguous(), y.contiguous()" if binary else "x.contiguous()"
    return _CUDA_HEAD.format(kernel=kernel, name=name, args=args) + _MODEL.format(params=params, call=call)


CUDA_SOLUTIONS: dict[str, str] = {
    "1_ReLU": _elementwise("relu", "v > 0.f ? v : 0.f"),
    "2_Add": _elementwise("add", "v + b[i]", binary=True),
    "5_Sigmoid": _elementwise("sigmoid", "1.f / (1.f + __expf(-v))"),
    "8_Softmax": _CUDA_HEAD.format(kernel=_SOFTMAX, name="softmax", args="torch::Tensor x")
    + _MODEL.format(params="x", call="x.contiguous()"),
}
"""Task id -> CUDA ``ModelNew`` source."""
