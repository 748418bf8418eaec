output "agents" {
  description = "Each agent's provider, location and public addresses."
  value = merge(
    { for name, s in hcloud_server.agent : name => { provider = "hcloud", location = s.location, ipv4 = s.ipv4_address, ipv6 = s.ipv6_address } },
    { for name, s in vultr_instance.agent : name => { provider = "vultr", location = s.region, ipv4 = s.main_ip, ipv6 = s.v6_main_ip } },
  )
}

output "register_commands" {
  description = "What to run against the collector's ClickHouse before apply: each prints the agent's token for agent_tokens."
  value       = [for name, a in var.agents : "meridian agents add ${name} --region ${a.region} --country ${a.country}"]
}
