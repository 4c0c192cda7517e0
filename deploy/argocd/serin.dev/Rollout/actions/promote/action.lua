-- promote: moves past the current step (a pause, an inconclusive analysis). The request goes into status.control, which ArgoCD
-- writes through the status subresource, so no field Git owns in spec changes.
if obj.status == nil then
  obj.status = {}
end
obj.status.control = {promoteStep = obj.status.currentStepIndex or 0}
return obj
