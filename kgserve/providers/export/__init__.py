"""The CPU export pipeline of local models: convert (torch -> ONNX -> int8, ONNX -> OpenVINO),
int8 weights for browsers, the export cache on disk, running an exported graph (encoder), the
accuracy guard with its shipped probe and calibration texts, and `backend.prepare`, which puts
them together for a provider. Heavy libraries are imported inside functions."""
