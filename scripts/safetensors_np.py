"""Write a safetensors file from numpy arrays or torch tensors, without the `safetensors`
package (the venv holds torch and numpy only).

Format (huggingface/safetensors): 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}} padded with spaces to a multiple of 8,
then the tensors' little-endian bytes back to back.
"""
import json
import struct

import numpy as np

DTYPES = {
    np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("float16"): "F16",
    np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("int16"): "I16",
    np.dtype("int8"): "I8", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL",
}


def as_numpy(t):
    """A torch tensor (bfloat16 widened to float32, which numpy lacks) or an array, as numpy."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        t = t.contiguous().numpy()
    return np.ascontiguousarray(t)


def save(tensors, path, metadata=None):
    """`tensors`: {name: array or tensor}, written in sorted name order."""
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        a = as_numpy(tensors[name])
        if a.dtype not in DTYPES:
            raise ValueError(f"{name}: dtype {a.dtype} has no safetensors code here")
        raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


def load(path):
    """{name: numpy array} of a safetensors file (the format above; `__metadata__` skipped)."""
    codes = {v: k for k, v in DTYPES.items()}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = codes[info["dtype"]].newbyteorder("<")
        out[name] = np.frombuffer(body[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    return out
