// Builds the Command provider (`pulumi-resource-command`) from github.com/pulumi/pulumi-command/provider,
// which has no tags of its own: the pseudo-version names the commit of the v1.2.1 release tag
// (proxy .info of github.com/pulumi/pulumi-command@v1.2.1: 7f3eb6f3b77c, 2026-03-03T23:59:22Z).
// Its go.mod (said to have no replace lines) cannot be read: the proxy refuses this version (403),
// so there is no go.sum, and the build reports BLOCKED with the proxy's answer until it serves it.
module thanos-multi-cluster/integration/builders/pulumi-command

go 1.24.0

require github.com/pulumi/pulumi-command/provider v0.0.0-20260303235922-7f3eb6f3b77c
