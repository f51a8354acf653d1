package acl

// mesosActions are the keys of Mesos's ACLs message, every action its
// local authorizer knows (include/mesos/authorizer/acls.proto, "message
// ACLs", Mesos 1.12). Of these modhost enforces view_flags and
// get_endpoints; a document may hold the others, since an agent's
// --acls file is written for the whole cluster, and Parse lists them in
// ACLs.Unenforced instead of refusing them.
var mesosActions = map[string]bool{
	"register_frameworks": true, "run_tasks": true,
	"reserve_resources": true, "unreserve_resources": true,
	"create_volumes": true, "destroy_volumes": true, "resize_volumes": true,
	"teardown_frameworks": true, "update_weights": true,
	"get_endpoints": true, "get_quotas": true, "update_quotas": true,
	"view_frameworks": true, "view_tasks": true, "view_executors": true,
	"access_sandboxes": true, "access_mesos_logs": true,
	"view_roles": true, "view_flags": true,
	"launch_nested_containers_as_user":                        true,
	"launch_nested_containers_under_parent_with_user":         true,
	"kill_nested_containers":                                  true,
	"wait_nested_containers":                                  true,
	"launch_nested_container_sessions_as_user":                true,
	"launch_nested_container_sessions_under_parent_with_user": true,
	"attach_containers_input":                                 true, "attach_containers_output": true,
	"view_containers": true, "set_log_level": true,
	"remove_nested_containers":     true,
	"register_agents":              true,
	"update_maintenance_schedules": true, "get_maintenance_schedules": true,
	"start_maintenances": true, "stop_maintenances": true, "get_maintenance_statuses": true,
	"drain_agents": true, "deactivate_agents": true, "reactivate_agents": true,
	"mark_agents_gone":             true,
	"launch_standalone_containers": true, "kill_standalone_containers": true,
	"wait_standalone_containers": true, "remove_standalone_containers": true,
	"view_standalone_containers":       true,
	"modify_resource_provider_configs": true, "mark_resource_providers_gone": true,
	"view_resource_providers": true,
	"prune_images":            true,
	"create_block_disks":      true, "destroy_block_disks": true,
	"create_mount_disks": true, "destroy_mount_disks": true, "destroy_raw_disks": true,
}
