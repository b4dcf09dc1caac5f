//导入包 go get github.com/gorilla/websocket

// Seed 001's Go client with its subscribe naming the contract and action
// orders/UPDATE, and otherwise as printed but with its URL and key taken
// from flags (or EOSPARK_URL and EOSPARK_KEY), its line breaks mended, and a way to
// stop: after -n messages, after one containing -until, or failing after
// -timeout. -every is the seed's subscribe interval (20s). The seed's
// log.Fatalf without a verb is kept; testdata keeps it from go vet.
package main

import (
	"flag"
	"github.com/gorilla/websocket"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"
)

var (
	urlFlag = flag.String("url", os.Getenv("EOSPARK_URL"), "WebSocket URL")
	keyFlag = flag.String("key", os.Getenv("EOSPARK_KEY"), "API key")
	n       = flag.Int("n", 0, "exit after this many messages (0: never)")
	until   = flag.String("until", "", "exit after a message containing this")
	timeout = flag.Duration("timeout", time.Minute, "fail after this long")
	every   = flag.Duration("every", time.Second*20, "subscribe interval")
)

func main() {
	flag.Parse()
	createClient()
}

func createClient() {
	// 中断通知chan
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	url := *urlFlag
	c, _, err := websocket.DefaultDialer.Dial(url, map[string][]string{
		"apikey": {*keyFlag},
	})
	if err != nil {
		log.Fatalf("dial:", err)
	} else {
		log.Printf("connect to %s successfully, waiting for heartbeat\n", url)
	}
	defer c.Close()
	done := make(chan struct{})
	finished := false
	go func() {
		defer close(done)
		for i := 1; ; i++ {
			_, message, err := c.ReadMessage()
			if err != nil {
				log.Println("read:", err)
				return
			}
			//收到服务器推送消息
			log.Printf("recv: %s", message)
			if i == *n || *until != "" && strings.Contains(string(message), *until) {
				finished = true
				return
			}
		}
	}()
	deadline := time.After(*timeout)
	// 模拟订阅 20s一次
	ticker := time.NewTicker(*every)
	defer ticker.Stop()
	for {
		select {
		case <-done:
			if !finished {
				os.Exit(1)
			}
			return
		case <-deadline:
			log.Fatal("timeout")
		case <-ticker.C:
			// 发送订阅信息
			json := `{"msg_type":"subscribe","account":"eosio.token","contract":"orders","action_name": "UPDATE"}`
			err := c.WriteMessage(websocket.TextMessage, []byte(json))
			log.Println("写数据:", json, err)
			if err != nil {
				log.Println("write:", err)
				return
			}
		case <-interrupt:
			log.Println("interrupt")
			// Cleanly close the connection by sending a close message and then
			// waiting (with timeout) for the server to close the connection.
			err := c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bay bay"))
			if err != nil {
				log.Println("write close:", err)
				return
			}
			select {
			case <-done:
			case <-time.After(time.Second):
			}
			return
		}
	}
}
