package store

// BacklogSQL lets the tests explain the backlog check's plan.
const BacklogSQL = backlogSQL
