// Command pulumi-resource-kubernetes serves the upstream Kubernetes provider, as upstream's own main
// package does. Upstream's package embeds files its release build generates first (`go generate`:
// the schema stamped with the version); Go refuses overlays inside the module cache, so this
// package of ours embeds them instead, and tests/integration/binaries.py overlays here the files
// upstream's generator writes (GoBinary.generator).
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
