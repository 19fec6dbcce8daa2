"""Tensor basics: creation, numpy bridge, arithmetic, shapes, indexing, devices."""

import numpy as np
import torch

device = "cuda" if torch.cuda.is_available() else "cpu"

data = [[1, 2], [3, 4]]
x_data = torch.tensor(data)
np_array = np.array(data, dtype=np.float64)
x_np = torch.from_numpy(np_array)
x_ones = torch.ones_like(x_data)
x_rand = torch.rand_like(x_data, dtype=torch.float)

shape = (2, 3)
zeros_tensor = torch.zeros(shape)
tensor = torch.ones(4, 4, device=device)
tensor[:, 1] = 0
t1 = torch.cat([tensor, tensor, tensor], dim=1)

y1 = tensor @ tensor.T
y2 = tensor.matmul(tensor.T)
z1 = tensor * tensor
agg = tensor.sum()
agg_item = agg.item()

np_array[0, 0] = 10.0  # shared memory: x_np sees it
a = torch.arange(12, dtype=torch.float32).view(3, 4)
b = torch.linspace(-1, 1, steps=4)
c = torch.mm(a, b.unsqueeze(1)).squeeze()
d = torch.einsum("ij,j->i", a, b)
e = torch.stack([a.t(), a.t()], dim=0).permute(1, 0, 2).reshape(4, -1)
f = torch.clamp(a - 5, min=-2, max=3)
g = torch.where(a > 6, a, torch.zeros_like(a))
values, indices = torch.max(a, dim=1)
top = torch.topk(a.flatten(), 3)
cs = torch.cumsum(a, dim=0)
n = torch.norm(a)
n2 = a.norm(dim=1)

RESULT = {
    "exact": {
        "x_np": x_np.tolist(),
        "x_ones_dtype_is_long": x_ones.dtype == torch.long,
        "x_rand_shape": list(x_rand.shape),
        "zeros": zeros_tensor.tolist(),
        "t1_shape": list(t1.shape),
        "y1": y1.tolist(),
        "same": torch.equal(y1, y2),
        "z1": z1.tolist(),
        "agg": agg_item,
        "c": c.tolist(),
        "d": d.tolist(),
        "e": e.tolist(),
        "f": f.tolist(),
        "g": g.tolist(),
        "max": values.tolist(),
        "argmax": indices.tolist(),
        "top": top.values.tolist(),
        "top_i": top.indices.tolist(),
        "cs": cs.tolist(),
        "norm": n.item(),
        "norm_rows": n2.tolist(),
        "numel": a.numel() + a.nelement(),
        "device": str(tensor.device),
        "dtype_names": [str(a.dtype == torch.float32), str(x_np.dtype == torch.float64)],
    }
}
