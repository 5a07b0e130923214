package libct

// libcontainer applies device cgroup rules only through a manager that this package
// registers when imported (runc's own main does the same); without it every container with
// device rules fails with "cgroup manager is not configured to set device rules".
import _ "github.com/opencontainers/cgroups/devices"
