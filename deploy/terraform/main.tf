# N Meridian agents across the regions of two VPS providers, each set up at
# first boot by deploy/cloud-init/agent.yaml (the binary, checked against its
# SHA-256, then the hardened systemd unit). Register each agent on the
# collector first; `terraform plan` prints the commands (register_commands).

locals {
  hcloud_agents = { for name, a in var.agents : name => a if a.provider == "hcloud" }
  vultr_agents  = { for name, a in var.agents : name => a if a.provider == "vultr" }

  # The same six values deploy/README.md gives envsubst by hand. Missing
  # tokens and binaries render empty here and are refused by the
  # preconditions below, with the fix (whether a token is there is no secret,
  # hence nonsensitive()).
  user_data = {
    for name, a in var.agents : name => templatefile("${path.module}/../cloud-init/agent.yaml", {
      collector_url = var.collector_url
      agent_token   = lookup(var.agent_tokens, name, "")
      agent_name    = name
      agent_region  = a.region
      binary_url    = lookup(var.agent_binaries, a.arch, { url = "", sha256 = "" }).url
      binary_sha256 = lookup(var.agent_binaries, a.arch, { url = "", sha256 = "" }).sha256
    })
  }
}

# user_data runs once, at first boot: changing it (a new token, collector or
# binary) replaces the server. To upgrade agents in place, run
# deploy/install.sh on them instead.
resource "hcloud_server" "agent" {
  for_each = local.hcloud_agents

  name        = each.key
  location    = each.value.location
  server_type = coalesce(each.value.size, each.value.arch == "arm64" ? var.hcloud_arm_server_type : var.hcloud_server_type)
  image       = var.hcloud_image
  ssh_keys    = var.hcloud_ssh_keys
  user_data   = local.user_data[each.key]
  labels = {
    app     = "meridian-agent"
    region  = each.value.region
    country = lower(each.value.country)
  }

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  lifecycle {
    precondition {
      condition     = nonsensitive(lookup(var.agent_tokens, each.key, "") != "")
      error_message = "No token for agent ${each.key}: run `meridian agents add ${each.key} --region ${each.value.region} --country ${each.value.country}` and put the token it prints in agent_tokens."
    }
    precondition {
      condition     = contains(keys(var.agent_binaries), each.value.arch)
      error_message = "Agent ${each.key} is ${each.value.arch}, and agent_binaries has no ${each.value.arch} binary."
    }
  }
}

resource "vultr_instance" "agent" {
  for_each = local.vultr_agents

  label       = each.key
  hostname    = each.key
  region      = each.value.location
  plan        = coalesce(each.value.size, var.vultr_plan)
  os_id       = var.vultr_os_id
  ssh_key_ids = var.vultr_ssh_key_ids
  user_data   = local.user_data[each.key]
  enable_ipv6 = true
  backups     = "disabled"
  tags        = ["meridian-agent", each.value.region, lower(each.value.country)]

  lifecycle {
    precondition {
      condition     = nonsensitive(lookup(var.agent_tokens, each.key, "") != "")
      error_message = "No token for agent ${each.key}: run `meridian agents add ${each.key} --region ${each.value.region} --country ${each.value.country}` and put the token it prints in agent_tokens."
    }
    precondition {
      condition     = each.value.arch == "amd64" && contains(keys(var.agent_binaries), "amd64")
      error_message = "Agent ${each.key}: Vultr's plans here are amd64, and agent_binaries needs an amd64 binary."
    }
  }
}
