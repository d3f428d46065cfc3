//go:build tools

// Package builder pins the upstream commands this builder module builds, so that
// `go mod tidy` keeps their requirements.
package builder

import (
	_ "github.com/google/go-containerregistry/cmd/crane"
)
