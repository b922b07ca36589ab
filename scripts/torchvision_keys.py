"""Write the state_dict keys and shapes of torchvision's ResNet-50 / ResNet-152 (one
`name shape` line each) to the committed fixtures tests/fixtures/torchvision_<arch>_keys.txt,
which the model tests compare our variable names against. Needs torchvision==0.26.0 (only to
regenerate the fixtures; tests read the committed files).

    python scripts/torchvision_keys.py tests/fixtures
"""
import sys

import torchvision

out_dir = sys.argv[1]
for arch in ["resnet50", "resnet152"]:
    model = getattr(torchvision.models, arch)(weights=None)
    with open(f"{out_dir}/torchvision_{arch}_keys.txt", "w") as f:
        for name, t in model.state_dict().items():
            f.write(f"{name} {'x'.join(str(d) for d in t.shape)}\n")
