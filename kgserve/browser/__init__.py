"""The browser feature: the model export a page downloads (export.py) beside the page, the
kgembed.js module and the service worker (static/), and transformers.js with ONNX Runtime Web
(vendor/, copied from npm's node_modules/ by vendored.py: package data, so wheels carry it)."""
