# Two low-cost VPS providers with broad reach between them: Hetzner Cloud
# (Europe, US East and West, Singapore) and Vultr (some thirty cities, with
# South America, Africa, India, Japan and Australia among them).
terraform {
  required_version = ">= 1.5"

  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = "~> 1.52"
    }
    vultr = {
      source  = "vultr/vultr"
      version = "~> 2.27"
    }
  }
}

# Credentials come from the environment, never from files: HCLOUD_TOKEN and
# VULTR_API_KEY. Terraform configures both providers whichever you use; give
# the other any value (export VULTR_API_KEY=unused) and it is never called.
provider "hcloud" {}

provider "vultr" {}
