# cronframework on Nomad: three scheduler replicas as a service job, one per node, against a ZooKeeper ensemble.
#
#   nomad var put nomad/jobs/cronframework api_token="$(openssl rand -hex 32)"
#   nomad job run -var 'zookeeper=zk1:2181,zk2:2181,zk3:2181' deploy/nomad/cronframework.nomad.hcl
#
# The API token comes from the Nomad variable at nomad/jobs/cronframework (key api_token), which only this job's
# tasks can read; the config file is rendered by a template. Each replica serves its HTTP API and status page on a
# port Nomad picks, registered as the Nomad service "cronframework" with /readyz as its check. docs/operations.md,
# "Deploy", describes every variable.

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "zookeeper" {
  type        = string
  description = "the ZooKeeper connect string: host:port[,host:port...]"
}

variable "root" {
  type    = string
  default = "/cronframework"
}

variable "command" {
  type        = list(string)
  default     = ["/opt/cronframework/venv/bin/cronframework"]
  description = "how a node runs cronframework (installed by scripts/provision.sh)"
}

variable "replicas" {
  type    = number
  default = 3
}

variable "distinct_hosts" {
  type        = bool
  default     = true
  description = "one replica per node; false only on a single-node test cluster"
}

variable "nomad_addr" {
  type        = string
  default     = "http://127.0.0.1:4646"
  description = "the Nomad API the scheduler's nomad backend launches jobs through (each node's local agent)"
}

job "cronframework" {
  type        = "service"
  datacenters = var.datacenters

  group "scheduler" {
    count = var.replicas

    dynamic "constraint" {
      for_each = var.distinct_hosts ? [1] : []
      content {
        operator = "distinct_hosts"
        value    = "true"
      }
    }

    # a replica that dies is replaced; the others take over leadership within the ZooKeeper session timeout
    restart {
      attempts = 10
      interval = "5m"
      delay    = "5s"
      mode     = "delay"
    }

    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "2m"
    }

    network {
      port "api" {}
    }

    service {
      provider = "nomad"
      name     = "cronframework"
      port     = "api"

      check {
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "scheduler" {
      driver = "raw_exec"

      config {
        command = var.command[0]
        args = concat(slice(var.command, 1, length(var.command)), [
          "scheduler",
          "--config", "${NOMAD_TASK_DIR}/scheduler.yaml",
          "--replica-id", "${node.unique.name}-${NOMAD_ALLOC_INDEX}",
          "--log-json",
        ])
      }

      # SIGTERM hands leadership over at once; the launches in flight finish first
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      template {
        destination = "${NOMAD_SECRETS_DIR}/api-token"
        perms       = "0400"
        change_mode = "restart"
        data        = <<-EOT
        {{- with nomadVar "nomad/jobs/cronframework" }}{{ .api_token }}{{ end }}
        EOT
      }

      template {
        destination = "${NOMAD_TASK_DIR}/scheduler.yaml"
        change_mode = "restart"
        data        = <<-EOT
        zookeeper:
          hosts: "${var.zookeeper}"
          root: "${var.root}"
        api:
          host: "{{ env "NOMAD_IP_api" }}"
          port: {{ env "NOMAD_PORT_api" }}
          advertise_url: "http://{{ env "NOMAD_ADDR_api" }}"
          token_file: "{{ env "NOMAD_SECRETS_DIR" }}/api-token"
        backends:
          nomad:
            address: "${var.nomad_addr}"
        EOT
      }

      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
