"""Deployment of a finished student: its file format and loading (student_file), ONNX and
TorchScript export (export), prediction on new inputs (predict). Nothing here imports training:
a deployed student needs only its network, its preprocessing and its weights."""
