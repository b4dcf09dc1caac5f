package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU is the CPU time process pid has used (user + system), from
// /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	return st.cpu, err
}

// procStat is the part of /proc/<pid>/stat hubload reads.
type procStat struct {
	ppid     int
	cpu      time.Duration // utime + stime
	children time.Duration // cutime + cstime: children that have been waited for
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	bad := fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	// The command name in parentheses may hold spaces: count from the ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, bad
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 15 { // state is field 3, ppid 4, utime 14 … cstime 17
		return procStat{}, bad
	}
	var n [5]int64
	for k, j := range []int{1, 11, 12, 13, 14} {
		if n[k], err = strconv.ParseInt(string(f[j]), 10, 64); err != nil {
			return procStat{}, bad
		}
	}
	return procStat{ppid: int(n[0]), cpu: time.Duration(n[1]+n[2]) * clockTick,
		children: time.Duration(n[3]+n[4]) * clockTick}, nil
}

// treeCPU is the CPU time of process pid, its live children and the
// children it has waited for: PostgreSQL's postmaster and its backends.
func treeCPU(pid int) (time.Duration, error) {
	st, err := readStat(pid)
	if err != nil {
		return 0, err
	}
	total := st.cpu + st.children
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cs, err := readStat(child); err == nil && cs.ppid == pid {
			total += cs.cpu
		}
	}
	return total, nil
}

// procRSS is process pid's resident set in KiB, from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			return strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// machineCPU is the machine's busy and total time over all cores, from
// the first line of /proc/stat.
func machineCPU() (busy, total time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	for k, v := range f[1:min(len(f), 9)] { // guest times are already in user
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += time.Duration(n) * clockTick
		if k != 3 && k != 4 { // idle, iowait
			busy += time.Duration(n) * clockTick
		}
	}
	return busy, total, nil
}

// selfCPU is the CPU time hubload has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMark is the CPU counters at one moment, so that a phase's use is the
// difference of two marks.
type cpuMark struct {
	at          time.Time
	server      time.Duration // 0 when the server's pid is unknown
	pg          time.Duration // 0 when the postmaster's pid is unknown
	self        time.Duration
	busy, total time.Duration
}

func markCPU(serverPID, pgPID int) cpuMark {
	m := cpuMark{at: time.Now(), self: selfCPU()}
	if serverPID != 0 {
		m.server, _ = procCPU(serverPID)
	}
	if pgPID != 0 {
		m.pg, _ = treeCPU(pgPID)
	}
	m.busy, m.total, _ = machineCPU()
	return m
}

// loadAverage is the machine's one-minute load average (0 if unknown).
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(string(f[0]), 64)
	return v
}
