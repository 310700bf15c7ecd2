package gameserver

import "github.com/gameserver/gameserver/internal/cluster"

// newDirectory connects to the cluster's directory.
func newDirectory(url string) (cluster.Directory, error) {
	return cluster.NewRedis(url)
}
