// Command gameserver runs a gameserver node with the example games, arena
// and chat. `gameserver -h` lists its flags and their environment
// variables.
package main

import (
	"github.com/gameserver/gameserver"
	"github.com/gameserver/gameserver/examples/arena"
	"github.com/gameserver/gameserver/examples/chat"
)

func main() {
	gameserver.Define("arena", arena.New, arena.Config)
	gameserver.Define("chat", chat.New, chat.Config)
	gameserver.Main()
}
