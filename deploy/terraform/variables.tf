variable "collector_url" {
  description = "The collector's base URL the agents send results to, without a trailing slash. HTTPS: agents refuse plain http to another host."
  type        = string

  validation {
    condition     = can(regex("^https://[^/[:space:]]+(/[^[:space:]]*[^/[:space:]])?$", var.collector_url))
    error_message = "The collector_url must be an https URL without a trailing slash, such as https://collector.example.com (agents refuse plain http to another host)."
  }
}

variable "agents" {
  description = <<-EOT
    The agents to place, by name (also the server's name). provider is hcloud
    or vultr; location is where (a Hetzner location such as fsn1, ash, sin or a
    Vultr region such as sao, jnb, nrt); region and country are what you gave
    `meridian agents add NAME --region REGION --country COUNTRY`. arch picks the
    binary (amd64, or arm64 on Hetzner's cax servers); size overrides the
    server type or plan.
  EOT
  type = map(object({
    provider = string
    location = string
    region   = string
    country  = string
    arch     = optional(string, "amd64")
    size     = optional(string)
  }))

  validation {
    condition     = alltrue([for name, a in var.agents : can(regex("^[a-z0-9][a-z0-9-]{0,62}$", name))])
    error_message = "Agent names must be lowercase letters, digits and dashes (they name servers too)."
  }
  validation {
    condition     = alltrue([for a in values(var.agents) : contains(["hcloud", "vultr"], a.provider)])
    error_message = "Each agent's provider must be hcloud or vultr."
  }
  validation {
    condition     = alltrue([for a in values(var.agents) : can(regex("^[a-z0-9][a-z0-9-]*$", a.region)) && can(regex("^[A-Z]{2}$", a.country))])
    error_message = "Each agent needs a region of lowercase letters, digits and dashes and a two-letter ISO country code, as given to meridian agents add."
  }
  validation {
    condition     = alltrue([for a in values(var.agents) : contains(["amd64", "arm64"], a.arch)])
    error_message = "An agent's arch must be amd64 or arm64."
  }
}

variable "agent_tokens" {
  description = "Each agent's token, by agent name: the last line `meridian agents add` prints. Keep them out of files: TF_VAR_agent_tokens='{\"ams-1\":\"mrd_...\"}'."
  type        = map(string)
  sensitive   = true
}

variable "agent_binaries" {
  description = "Where the servers download meridian-agent, per arch, and its SHA-256: `make dist` writes dist/meridian-agent-linux-ARCH and dist/SHA256SUMS; publish them anywhere the servers reach over HTTPS."
  type = map(object({
    url    = string
    sha256 = string
  }))

  validation {
    condition     = alltrue([for b in values(var.agent_binaries) : can(regex("^https?://", b.url)) && can(regex("^[0-9a-f]{64}$", b.sha256))])
    error_message = "Each binary needs an http(s) url and a sha256 of 64 lowercase hex digits (its line in dist/SHA256SUMS)."
  }
}

variable "hcloud_server_type" {
  description = "Hetzner server type for amd64 agents (the agent needs a few tens of MB; browser checks a few hundred)."
  type        = string
  default     = "cx23"
}

variable "hcloud_arm_server_type" {
  description = "Hetzner server type for arm64 agents (cax servers are in Europe only)."
  type        = string
  default     = "cax11"
}

variable "hcloud_image" {
  description = "Hetzner image: a Debian or Ubuntu release with cloud-init."
  type        = string
  default     = "debian-12"
}

variable "hcloud_ssh_keys" {
  description = "Names or ids of SSH keys in the Hetzner project to let in as root."
  type        = list(string)
  default     = []
}

variable "vultr_plan" {
  description = "Vultr plan for agents (vultr-cli plans list)."
  type        = string
  default     = "vc2-1c-1gb"
}

variable "vultr_os_id" {
  description = "Vultr OS id: 2136 is Debian 12 x64 (vultr-cli os list)."
  type        = number
  default     = 2136
}

variable "vultr_ssh_key_ids" {
  description = "Ids of SSH keys in the Vultr account to let in as root."
  type        = list(string)
  default     = []
}
