"""Image classification models: torchvision and timm families by name (no pretrained weights)."""
