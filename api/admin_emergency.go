package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/hubdev/hub/store"
)

// optionalString is a JSON field that tells absent from null: Set is false
// when the field is absent, Value nil when it is null.
type optionalString struct {
	Set   bool
	Value *string
}

// UnmarshalJSON is called for a present field only, null included.
func (o *optionalString) UnmarshalJSON(b []byte) error {
	o.Set = true
	return json.Unmarshal(b, &o.Value)
}

type emergencyRequest struct {
	Emergency *bool          `json:"emergency"`
	Reason    optionalString `json:"reason"`
}

// emergencyView is the emergency shape of SPEC §8.
type emergencyView struct {
	ID          int        `json:"id"`
	Emergency   bool       `json:"emergency"`
	Reason      *string    `json:"reason"`
	TriggeredAt *time.Time `json:"triggeredAt"`
}

func newEmergencyView(e store.Emergency) emergencyView {
	v := emergencyView{ID: e.ID, Emergency: e.Emergency, Reason: e.Reason}
	if e.TriggeredAt != nil {
		t := e.TriggeredAt.UTC()
		v.TriggeredAt = &t
	}
	return v
}

// emergencySet answers POST /admin/emergency. An absent reason keeps the
// stored one; null or "" clears it. The broadcast follows from the
// capture trigger, which records nothing when no value changed.
func (h *adminHandler) emergencySet(c echo.Context) error {
	var req emergencyRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if req.Emergency == nil {
		return invalid("emergency: required, true or false")
	}
	p := store.EmergencySetParams{Emergency: *req.Emergency, SetReason: req.Reason.Set}
	if r := req.Reason.Value; r != nil && *r != "" {
		if utf8.RuneCountInString(*r) > maxReasonLength {
			return invalid(fmt.Sprintf("reason: must be at most %d characters", maxReasonLength))
		}
		p.Reason = r
	}
	e, err := h.store.EmergencySet(c.Request().Context(), p)
	if err != nil {
		return err
	}
	h.log.Info("admin: emergency set", "emergency", e.Emergency)
	return c.JSON(http.StatusOK, newEmergencyView(e))
}
