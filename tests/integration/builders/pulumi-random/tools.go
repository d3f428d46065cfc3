//go:build tools

// Package builder pins the commands this builder module builds (tests/integration/programs.py).
package builder

import (
	_ "github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random"
)
