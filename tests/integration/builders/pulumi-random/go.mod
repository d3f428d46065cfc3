// Builds the Random provider (`pulumi-resource-random`) from github.com/pulumi/pulumi-random/provider/v4
// at the release the Python SDK pins (pulumi-random==4.21.4). The proxy refuses this version (403), so
// its replace lines could not be read and there is no go.sum: the build reports BLOCKED with the
// proxy's answer. It would also need a pulumi-terraform-bridge newer than the newest served (v3.120.0).
module thanos-multi-cluster/integration/builders/pulumi-random

go 1.24.0

require github.com/pulumi/pulumi-random/provider/v4 v4.21.4
