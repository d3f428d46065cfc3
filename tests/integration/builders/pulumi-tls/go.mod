// Builds the TLS provider (`pulumi-resource-tls`) from github.com/pulumi/pulumi-tls/provider/v5 at
// the release the Python SDK pins (pulumi-tls==5.6.2). The proxy refuses this version (403), so its
// replace lines could not be read and there is no go.sum: the build reports BLOCKED with the
// proxy's answer. It would also need a pulumi-terraform-bridge newer than the newest served (v3.120.0).
module thanos-multi-cluster/integration/builders/pulumi-tls

go 1.24.0

require github.com/pulumi/pulumi-tls/provider/v5 v5.6.2
