package cri

import (
	"encoding/json"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/peapod-runtime/peapod/images"
)

func criImage(img images.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        img.Size,
		Username:    img.Username,
		Spec:        &runtimeapi.ImageSpec{Image: img.ID, Annotations: img.Annotations},
		Pinned:      img.Pinned,
	}
	if img.UID != nil {
		out.Uid = &runtimeapi.Int64Value{Value: *img.UID}
	}
	return out
}

func imageVerboseInfo(img images.Image) (map[string]string, error) {
	raw, err := json.Marshal(struct {
		ImageSpec any    `json:"imageSpec"`
		Platform  any    `json:"platform"`
		Manifest  string `json:"manifestDigest"`
	}{img.Config, img.Platform, img.ManifestDigest})
	if err != nil {
		return nil, fmt.Errorf("encode image info: %w", err)
	}
	return map[string]string{"info": string(raw)}, nil
}
