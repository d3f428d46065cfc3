//go:build tools

// Package builder pins the commands this builder module builds (tests/integration/programs.py).
package builder

import (
	_ "go.etcd.io/etcd/server/v3"
)
