package deploy

import (
	"encoding/xml"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/collector/store"
)

// xmlNode is any element of a ClickHouse config.
type xmlNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Nodes   []xmlNode  `xml:",any"`
}

func (n *xmlNode) all(name string) []*xmlNode {
	var out []*xmlNode
	for i := range n.Nodes {
		if n.Nodes[i].XMLName.Local == name {
			out = append(out, &n.Nodes[i])
		}
	}
	return out
}

// get follows a path of element names; nil when any is missing.
func (n *xmlNode) get(path ...string) *xmlNode {
	for _, name := range path {
		all := n.all(name)
		if len(all) == 0 {
			return nil
		}
		n = all[0]
	}
	return n
}

func (n *xmlNode) text(path ...string) string {
	if c := n.get(path...); c != nil {
		return strings.TrimSpace(c.Text)
	}
	return ""
}

// chConfig parses deploy/clickhouse/NAME; its root must be one a server takes.
func chConfig(t *testing.T, name string) *xmlNode {
	t.Helper()
	path := filepath.Join(repo(t), "deploy/clickhouse", name)
	var root xmlNode
	if err := xml.Unmarshal(readFile(t, path), &root); err != nil {
		t.Fatalf("%s is not well-formed: %v", path, err)
	}
	if r := root.XMLName.Local; r != "clickhouse" && r != "yandex" {
		t.Fatalf("%s: root <%s>, want <clickhouse> (or <yandex> for 18.16)", path, r)
	}
	return &root
}

func TestClickHouseConfigsWellFormed(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repo(t), "deploy/clickhouse/*.xml"))
	for _, f := range files {
		chConfig(t, filepath.Base(f))
	}
	single := chConfig(t, "single-node.xml")
	if single.XMLName.Local != "clickhouse" || single.get("remote_servers") != nil || single.get("macros") != nil {
		t.Errorf("single-node.xml: want a <clickhouse> config without cluster sections")
	}
}

// migrateMacros returns the macros `meridian migrate --cluster C
// --replicated` puts in Replicated engine paths: what every server of such a
// cluster must define.
func migrateMacros(t *testing.T, cluster string) map[string]bool {
	t.Helper()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	macros := map[string]bool{}
	for _, m := range ms {
		stmts, err := m.Statements(store.Options{Database: "meridian", Cluster: cluster, Replicated: true})
		if err != nil {
			t.Fatalf("cluster name %q: %v", cluster, err)
		}
		for _, s := range stmts {
			for _, mm := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(s, -1) {
				macros[mm[1]] = true
			}
		}
	}
	if len(macros) == 0 {
		t.Fatal("no {macro} in any replicated migration: has migrate changed?")
	}
	return macros
}

// TestClickHouseClusterMatchesMigrate checks both cluster layouts: the
// Keeper one split in three files and the 18.16 one in cluster-example.xml.
func TestClickHouseClusterMatchesMigrate(t *testing.T) {
	for _, layout := range []struct{ servers, macros string }{
		{"cluster-remote-servers.xml", "cluster-macros.xml"},
		{"cluster-example.xml", "cluster-example.xml"},
	} {
		t.Run(layout.servers, func(t *testing.T) {
			clusters := chConfig(t, layout.servers).get("remote_servers")
			if clusters == nil || len(clusters.Nodes) != 1 {
				t.Fatalf("%s: want one cluster in <remote_servers>", layout.servers)
			}
			cluster := &clusters.Nodes[0]
			name := cluster.XMLName.Local
			checkReplicatedCluster(t, layout.servers, cluster)
			checkMacros(t, chConfig(t, layout.macros), cluster, migrateMacros(t, name))
			checkReadmeCluster(t, name)
		})
	}
}

// checkReplicatedCluster: shards of replicas, each shard writing to one
// replica through Distributed tables (internal_replication).
func checkReplicatedCluster(t *testing.T, file string, cluster *xmlNode) {
	t.Helper()
	shards := cluster.all("shard")
	if len(shards) < 2 {
		t.Errorf("%s: %d shards, want an example with several", file, len(shards))
	}
	for i, s := range shards {
		if s.text("internal_replication") != "true" {
			t.Errorf("%s: shard %d: internal_replication must be true with Replicated tables", file, i+1)
		}
		rs := s.all("replica")
		if len(rs) < 2 {
			t.Errorf("%s: shard %d has %d replicas, want at least 2", file, i+1, len(rs))
		}
		for _, r := range rs {
			if r.text("host") == "" || r.text("port") != "9000" {
				t.Errorf("%s: shard %d: a replica needs a host and the native port 9000", file, i+1)
			}
		}
	}
}

// checkMacros: the example server's macros are exactly migrate's, and say
// where that server sits in the cluster.
func checkMacros(t *testing.T, cfg, cluster *xmlNode, want map[string]bool) {
	t.Helper()
	m := cfg.get("macros")
	if m == nil {
		t.Fatal("no <macros>")
	}
	got := map[string]bool{}
	for _, n := range m.Nodes {
		got[n.XMLName.Local] = true
	}
	if strings.Join(sortedKeys(got), " ") != strings.Join(sortedKeys(want), " ") {
		t.Errorf("macros %v, want migrate's %v", sortedKeys(got), sortedKeys(want))
	}
	shard, err := strconv.Atoi(m.text("shard"))
	if err != nil || shard < 1 || shard > len(cluster.all("shard")) {
		t.Fatalf("macro shard %q is not a shard number of the cluster", m.text("shard"))
	}
	host, replica := cfg.text("interserver_http_host"), m.text("replica")
	found := false
	for _, r := range cluster.all("shard")[shard-1].all("replica") {
		found = found || strings.HasPrefix(r.text("host"), replica)
	}
	if !found || !strings.HasPrefix(host, replica) {
		t.Errorf("macros: replica %q (interserver_http_host %q) is not a host of shard %d", replica, host, shard)
	}
}

// checkReadmeCluster: the commands deploy/README.md and meridian.env give
// name a cluster the configs define.
func checkReadmeCluster(t *testing.T, name string) {
	t.Helper()
	for _, f := range []string{"deploy/README.md", "deploy/systemd/meridian.env"} {
		src := string(readFile(t, filepath.Join(repo(t), f)))
		uses := regexp.MustCompile(`--cluster (\S+) --replicated`).FindAllStringSubmatch(src, -1)
		if len(uses) == 0 {
			t.Errorf("%s never shows --cluster NAME --replicated", f)
		}
		for _, u := range uses {
			if u[1] != name {
				t.Errorf("%s says --cluster %s; the configs define %s", f, u[1], name)
			}
		}
	}
}

func TestClickHouseKeeper(t *testing.T) {
	keeper := chConfig(t, "cluster-keeper.xml").get("keeper_server")
	if keeper == nil {
		t.Fatal("cluster-keeper.xml has no <keeper_server>")
	}
	servers := keeper.get("raft_configuration").all("server")
	if len(servers)%2 == 0 {
		t.Errorf("%d Keeper servers: want an odd number", len(servers))
	}
	ids, hosts := map[string]bool{}, map[string]bool{}
	for _, s := range servers {
		ids[s.text("id")] = true
		hosts[s.text("hostname")+":"+keeper.text("tcp_port")] = true
	}
	if !ids[keeper.text("server_id")] || len(ids) != len(servers) {
		t.Errorf("server_id %s must be one of the raft servers' distinct ids %v", keeper.text("server_id"), sortedKeys(ids))
	}
	clients := map[string]bool{}
	for _, n := range chConfig(t, "cluster-remote-servers.xml").get("zookeeper").all("node") {
		clients[n.text("host")+":"+n.text("port")] = true
	}
	if strings.Join(sortedKeys(clients), " ") != strings.Join(sortedKeys(hosts), " ") {
		t.Errorf("the servers' <zookeeper> nodes %v are not the Keeper ensemble %v", sortedKeys(clients), sortedKeys(hosts))
	}
}
