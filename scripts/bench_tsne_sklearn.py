"""scikit-learn side of `gcl-repro bench tsne`.

Usage: python bench_tsne_sklearn.py INPUT.f32 OUTPUT.f32 N DIM THREADS
Reads N x DIM little-endian float32 values, runs TSNE with the settings of gcl-repro's t-SNE
(perplexity 50, early exaggeration 15, 1000 iterations, PCA init, learning rate "auto",
Barnes-Hut angle 0.5), writes the N x 2 embedding as float32 and prints one JSON line with the
wall time of fit_transform.
"""
import inspect
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE


def main():
    inp, out, n, dim, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    x = np.fromfile(inp, dtype="<f4").reshape(n, dim)
    kwargs = dict(n_components=2, perplexity=50.0, early_exaggeration=15.0, init="pca",
                  learning_rate="auto", method="barnes_hut", angle=0.5, random_state=0, n_jobs=threads)
    # The iteration count was renamed n_iter -> max_iter in scikit-learn 1.5.
    params = inspect.signature(TSNE).parameters
    kwargs["max_iter" if "max_iter" in params else "n_iter"] = 1000
    tsne = TSNE(**kwargs)
    t0 = time.perf_counter()
    y = tsne.fit_transform(x)
    seconds = time.perf_counter() - t0
    np.asarray(y, dtype="<f4").tofile(out)
    print(json.dumps({"seconds": seconds, "sklearn_version": sklearn.__version__, "n_iter": int(tsne.n_iter_)}))


if __name__ == "__main__":
    main()
