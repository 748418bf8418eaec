// Package deploy checks the deployment files beside it (systemd units,
// install.sh, cloud-init, Terraform, Compose, ClickHouse configs) with the
// tools of their own ecosystems. It holds tests only.
package deploy
