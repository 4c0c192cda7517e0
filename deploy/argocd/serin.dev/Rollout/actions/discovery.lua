-- The actions ArgoCD offers on a Rollout, enabled when the controller would act on them.
local st = obj.status or {}
local rolling = st.currentPodHash ~= nil and st.currentPodHash ~= st.stablePodHash
local aborted = st.abort == true
local paused = st.userPaused == true
local actions = {}
actions["promote"] = {["disabled"] = not rolling or aborted}
actions["promote-full"] = {["disabled"] = not rolling or aborted}
actions["abort"] = {["disabled"] = not rolling or aborted}
actions["retry"] = {["disabled"] = not aborted}
actions["pause"] = {["disabled"] = paused}
actions["resume"] = {["disabled"] = not paused}
return actions
