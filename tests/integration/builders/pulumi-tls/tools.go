//go:build tools

// Package builder pins the commands this builder module builds (tests/integration/programs.py).
package builder

import (
	_ "github.com/pulumi/pulumi-tls/provider/v5/cmd/pulumi-resource-tls"
)
