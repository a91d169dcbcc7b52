"""The browser feature: the model export a page downloads (export.py) beside the page, the
kgembed.js module and the service worker (static/), and transformers.js from npm
(package.json, node_modules/)."""
