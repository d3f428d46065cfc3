"""In-process fakes of the services `tools.verify` talks to: the Kubernetes API, Thanos Query,
OpenSearch, MinIO (S3), Grafana and the Longhorn UI, each a small HTTPS server on 127.0.0.1 with
certificates from a throwaway CA (`pki.py`). Tests change their state to produce each failure."""
