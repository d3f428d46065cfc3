"""Components of the thanos-multi-cluster Pulumi program: one ComponentResource per file."""
